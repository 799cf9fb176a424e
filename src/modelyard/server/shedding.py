"""Overload shedding: past `max_in_flight` chat requests, answer 503 at once.

A gateway past its capacity that queues every request turns a short burst into
seconds of latency for everyone (and the callers time out anyway). `LoadShedder`,
the outermost ASGI middleware, counts the chat requests in flight (a stream counts
until its last byte) and answers the one over the limit with 503, `Retry-After`
and the OpenAI error shape before anything else runs: a shed request is never
parsed, routed, reserved against a budget, sent to a provider or written to the
ledger. Each one is counted in `modelyard_requests_shed_total` (prometheus-client,
default registry, so `/metrics` and the multiprocess aggregate include it).

The count is per process: with `--workers N` each worker sheds past its own limit.
"""

from __future__ import annotations

import math
from typing import Final

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard.errors import OverloadedError
from modelyard.server.render import SafeJSONResponse

# Only calls that can reach a provider are shed; health, models and admin stay up
# so an overloaded gateway can still be observed and managed.
SHED_PATHS: Final = frozenset({"/v1/chat/completions"})
DEFAULT_RETRY_AFTER_S: Final = 1.0

REQUESTS_SHED: Final = Counter(
    "modelyard_requests_shed",
    "Chat requests answered 503 at once because max_in_flight requests were in flight.",
)


class LoadShedder:
    """Sheds chat requests past `max_in_flight` (see the module docstring);
    `max_in_flight` 0 or None turns shedding off."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int | None,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight or 0
        self.retry_after = str(max(1, math.ceil(retry_after_s)))
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.max_in_flight or scope["type"] != "http" or scope["path"] not in SHED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await self._shed(scope, receive, send)
            return
        # One event loop per process: no lock is needed between check and increment.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, scope: Scope, receive: Receive, send: Send) -> None:
        REQUESTS_SHED.inc()
        error = OverloadedError(
            f"the gateway is at its limit of {self.max_in_flight} requests in flight; "
            f"retry after {self.retry_after} s",
            retry_after=float(self.retry_after),
        )
        response = SafeJSONResponse(
            error.to_openai(), 503, headers={"retry-after": self.retry_after}
        )
        await response(scope, receive, send)
