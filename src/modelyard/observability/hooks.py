"""What the engine and the executor tell observers: the seam metrics and traces hang on.

Kept free of prometheus-client and OpenTelemetry imports: the engine imports this
module on every start-up, whether or not anything observes it.

The engine calls `request_started` and `request_ended` once per caller request
(the end of a stream is when its last chunk went out, or it broke); the executor
calls `attempt_billed` once per provider attempt, with the very record it wrote to
the ledger, so counts from it agree with billing by construction; and
`hedge_started` when a slow first choice gets a racing runner-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from modelyard.errors import ModelyardError

if TYPE_CHECKING:
    from modelyard.attempt_types import FailedAttempt
    from modelyard.cascade.trace import CascadeTrace
    from modelyard.ledger.records import CallRecord
    from modelyard.routing.plan import Decision
    from modelyard.types import ChatRequest, Money, Usage

# A caller that went away before the answer (nginx's convention; never sent).
CLIENT_CLOSED_STATUS = 499


@dataclass(frozen=True, slots=True)
class RequestEnd:
    """How one caller request ended. `status` is the HTTP status it got (a stream
    broken after its first chunk: the error's status, though 200 was already sent);
    `decision` is None when it was refused before planning (bad input, 403, 429)."""

    status: int
    decision: Decision | None = None
    model_id: str | None = None
    failed: Sequence[FailedAttempt] = ()
    cascade: CascadeTrace | None = None
    cost_usd: Money | None = None
    usage: Usage | None = None
    error: BaseException | None = None


def status_of(exc: BaseException) -> int:
    """The HTTP status an exception ends a request with."""
    if isinstance(exc, ModelyardError):
        return exc.http_status
    if not isinstance(exc, Exception):  # cancelled: the client went away
        return CLIENT_CLOSED_STATUS
    return 500


class Telemetry(Protocol):
    """An observer of requests and attempts. Every method must be cheap and must not
    raise: it runs on the request path."""

    def request_started(self, request_id: str, request: ChatRequest) -> None: ...

    def attempt_billed(self, record: CallRecord) -> None: ...

    def hedge_started(self, decision: Decision, model_id: str) -> None: ...

    def request_ended(self, request_id: str, end: RequestEnd) -> None: ...


class Fanout:
    """Several observers as one (Prometheus and OpenTelemetry side by side)."""

    def __init__(self, observers: Sequence[Telemetry]) -> None:
        self.observers = tuple(observers)

    def request_started(self, request_id: str, request: ChatRequest) -> None:
        for o in self.observers:
            o.request_started(request_id, request)

    def attempt_billed(self, record: CallRecord) -> None:
        for o in self.observers:
            o.attempt_billed(record)

    def hedge_started(self, decision: Decision, model_id: str) -> None:
        for o in self.observers:
            o.hedge_started(decision, model_id)

    def request_ended(self, request_id: str, end: RequestEnd) -> None:
        for o in self.observers:
            o.request_ended(request_id, end)
