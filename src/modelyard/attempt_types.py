"""The value types of the executor's work: who a request is, one attempt while it
runs, what a finished call returns, and how hard a request tries.

Kept apart from `executor` (which re-exports them) so the runners that build on it
(cascades, councils) and the executor itself stay small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from modelyard.attempts import InFlight
from modelyard.catalog.cards import ModelCard
from modelyard.errors import LowConfidenceError, ModelyardError
from modelyard.keys import Principal
from modelyard.routing.plan import RankedCandidate
from modelyard.types import Completion, Money

if TYPE_CHECKING:
    from modelyard.cache.note import CacheNote
    from modelyard.cascade.trace import CascadeTrace
    from modelyard.council.result import CouncilResult

DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class CallContext:
    """Identifies one caller request across its attempts. `step` and `role` say which
    step of a several-call decision (a cascade hop) the attempts serve, and as what."""

    request_id: str
    caller: str | None = None
    step: int | None = None
    role: str | None = None
    # Issue 12: the key, team and tags the attempt is billed to (budgets apply
    # only when set).
    principal: Principal | None = None


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    model_id: str
    error: ModelyardError


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished non-streamed call: the answer, who gave it and what it cost."""

    completion: Completion
    card: ModelCard
    cost_usd: Money
    failed: tuple[FailedAttempt, ...]
    # A cascade's hops and verdicts; `cost_usd` is then the total of every hop.
    cascade: CascadeTrace | None = None
    # A council's members, claims and agreement; `cost_usd` is every call's.
    council: CouncilResult | None = None
    # The specialist's low-confidence (or out-of-scope) answer returned as the last
    # resort, when nothing was left to escalate to; None for a confident answer.
    last_resort: LowConfidenceError | None = None
    # What the response cache did (`x-modelyard-cache`); None when it is off.
    cache: CacheNote | None = None


@dataclass
class Attempt:
    """Book-keeping for one provider attempt while it runs."""

    candidate: RankedCandidate
    number: int
    started_at: datetime
    t0: float
    ttft_ms: float | None = None
    streamed_text: list[str] = field(default_factory=list)
    record_id: str | None = None
    # Set while the provider call runs; says whether it reached the network.
    flight: InFlight = field(default_factory=InFlight)


@dataclass(frozen=True, slots=True)
class Limits:
    """How hard one request tries (from the config's `resilience` section)."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    request_timeout_s: float = 300.0
    attempt_timeout_s: float = 120.0
    first_token_timeout_s: float = 30.0
    retry_wait_max_s: float = 2.0
