"""Deployment health: a circuit breaker per deployment and a 429 cool-down.

The executor reports every attempt's outcome; the router asks, before planning,
which deployments to skip and why (`unavailable(now)`), so the decision's
rejections say "circuit open" or "cooling down after 429" like any other reason.
Planning stays pure: it receives that snapshot as data.

Breaker states, per deployment::

    closed ──(failure_threshold consecutive failures)──► open
    open ──(cooldown_s elapsed)──► half-open: up to `half_open_probes` requests let through
    half-open ──success──► closed        half-open ──failure──► open (cool-down restarts)

Only failures that say something about the deployment count (`ProviderError`s that
are `retryable`: connect errors, timeouts, 5xx, overload, bad bodies). A caller's
own 4xx never opens a breaker; a 429 starts a cool-down instead of counting.

`HealthState` is a protocol so several replicas can share it later (Redis); the
in-process implementation is the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from modelyard.errors import ModelyardError, ProviderRateLimitError

BreakerState = Literal["closed", "open", "half_open"]

DEFAULT_COOLDOWN_AFTER_429_S = 5.0


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a deployment's breaker opens and how it recovers."""

    failure_threshold: int = 5
    cooldown_s: float = 30.0
    half_open_probes: int = 1
    default_429_cooldown_s: float = DEFAULT_COOLDOWN_AFTER_429_S


class HealthState(Protocol):
    """Shared view of which deployments are healthy."""

    def unavailable(self, now: float) -> Mapping[str, str]:
        """Deployments to skip at monotonic time `now`, each with the reason."""
        ...

    def acquire(self, deployment: str, now: float) -> bool:
        """Claim the right to call `deployment` now (false: a half-open probe is
        already out, so skip it)."""
        ...

    def record_success(self, deployment: str, now: float) -> None: ...

    def record_failure(self, deployment: str, error: ModelyardError, now: float) -> None: ...

    def release(self, deployment: str) -> None:
        """An acquired call ended without a verdict (cancelled): free its probe slot."""
        ...


@dataclass(frozen=True, slots=True)
class BreakerView:
    """One deployment's health at an instant, for metrics: the breaker's state, its
    consecutive failures, and the seconds left of an open circuit and a 429 cool-down."""

    state: BreakerState
    failures: int
    open_s: float
    cooling_s: float


@dataclass
class _Deployment:
    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probes_out: int = 0
    cooling_until: float = 0.0
    last_error: str = ""


@dataclass
class InProcessHealth:
    """Breakers and cool-downs in this process's memory."""

    settings: BreakerSettings = field(default_factory=BreakerSettings)
    _by_name: dict[str, _Deployment] = field(default_factory=dict)

    def _get(self, name: str) -> _Deployment:
        return self._by_name.setdefault(name, _Deployment())

    def state(self, deployment: str, now: float) -> BreakerState:
        """The breaker's state at `now` (open turns half-open once the cool-down ends)."""
        d = self._get(deployment)
        if d.state == "open" and now - d.opened_at >= self.settings.cooldown_s:
            d.state, d.probes_out = "half_open", 0
        return d.state

    def view(self, deployment: str, now: float) -> BreakerView:
        """`deployment`'s health at `now` (a deployment never called is closed)."""
        d = self._by_name.get(deployment)
        if d is None:
            return BreakerView("closed", 0, 0.0, 0.0)
        state = self.state(deployment, now)
        open_s = self.settings.cooldown_s - (now - d.opened_at) if state == "open" else 0.0
        return BreakerView(state, d.failures, max(open_s, 0.0), max(d.cooling_until - now, 0.0))

    def unavailable(self, now: float) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, d in self._by_name.items():
            state = self.state(name, now)
            if state == "open":
                left = self.settings.cooldown_s - (now - d.opened_at)
                out[name] = (
                    f"circuit open after {d.failures} consecutive failures "
                    f"(last: {d.last_error}); half-open in {left:.1f}s"
                )
            elif state == "half_open" and d.probes_out >= self.settings.half_open_probes:
                out[name] = "circuit half-open: a probe request is in flight"
            elif d.cooling_until > now:
                out[name] = f"cooling down after 429 for {d.cooling_until - now:.1f}s"
        return out

    def acquire(self, deployment: str, now: float) -> bool:
        d = self._get(deployment)
        state = self.state(deployment, now)
        if state == "open" or d.cooling_until > now:
            return False
        if state == "half_open":
            if d.probes_out >= self.settings.half_open_probes:
                return False
            d.probes_out += 1
        return True

    def release(self, deployment: str) -> None:
        d = self._get(deployment)
        d.probes_out = max(0, d.probes_out - 1)

    def record_success(self, deployment: str, now: float) -> None:
        d = self._get(deployment)
        d.state, d.failures, d.probes_out = "closed", 0, 0

    def record_failure(self, deployment: str, error: ModelyardError, now: float) -> None:
        d = self._get(deployment)
        if isinstance(error, ProviderRateLimitError):
            wait = (
                error.retry_after
                if error.retry_after is not None
                else self.settings.default_429_cooldown_s
            )
            d.cooling_until = max(d.cooling_until, now + wait)
            d.probes_out = max(0, d.probes_out - 1)
            return
        if not error.retryable:
            d.probes_out = max(0, d.probes_out - 1)
            return
        d.failures += 1
        d.last_error = type(error).__name__
        if d.state == "half_open" or d.failures >= self.settings.failure_threshold:
            d.state, d.opened_at, d.probes_out = "open", now, 0
