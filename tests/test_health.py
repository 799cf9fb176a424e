"""Circuit breakers and 429 cool-downs, per deployment."""

from __future__ import annotations

from modelyard.errors import (
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTimeoutError,
    UpstreamRequestError,
)
from modelyard.health import BreakerSettings, InProcessHealth


def health() -> InProcessHealth:
    return InProcessHealth(BreakerSettings(failure_threshold=3, cooldown_s=10, half_open_probes=1))


def test_breaker_opens_after_consecutive_failures_only() -> None:
    h = health()
    for t in range(2):
        h.record_failure("a", ProviderServerError("500"), now=t)
    h.record_success("a", now=2)
    for t in range(3, 5):
        h.record_failure("a", ProviderTimeoutError("slow"), now=t)
    assert h.state("a", now=5) == "closed", "a success in between resets the count"
    h.record_failure("a", ProviderServerError("500"), now=5)
    assert h.state("a", now=5) == "open"
    reason = h.unavailable(now=6)["a"]
    assert "circuit open after 3 consecutive failures" in reason
    assert "ProviderServerError" in reason
    assert not h.acquire("a", now=6)


def test_half_open_lets_one_probe_through_then_closes_on_success() -> None:
    h = health()
    for t in range(3):
        h.record_failure("a", ProviderServerError("500"), now=t)
    assert h.state("a", now=12.5) == "half_open"
    assert "a" not in h.unavailable(now=12.5)
    assert h.acquire("a", now=12.5)
    assert not h.acquire("a", now=12.6), "only one probe at a time"
    assert h.unavailable(now=12.6)["a"] == "circuit half-open: a probe request is in flight"
    h.record_success("a", now=13)
    assert h.state("a", now=13) == "closed"
    assert h.acquire("a", now=13)


def test_failed_probe_reopens_the_circuit() -> None:
    h = health()
    for t in range(3):
        h.record_failure("a", ProviderServerError("500"), now=t)
    assert h.acquire("a", now=12.5)
    h.record_failure("a", ProviderServerError("500"), now=12.6)
    assert h.state("a", now=13) == "open"
    assert h.state("a", now=22.7) == "half_open"


def test_429_cools_down_for_retry_after_without_opening_the_breaker() -> None:
    h = health()
    h.record_failure("a", ProviderRateLimitError("429", retry_after=4.0), now=100)
    assert h.unavailable(now=101)["a"] == "cooling down after 429 for 3.0s"
    assert not h.acquire("a", now=101)
    assert h.state("a", now=101) == "closed"
    assert "a" not in h.unavailable(now=104.1)
    assert h.acquire("a", now=104.1)


def test_callers_own_errors_do_not_count_against_the_deployment() -> None:
    h = health()
    for t in range(10):
        h.record_failure("a", UpstreamRequestError("bad request"), now=t)
    assert h.state("a", now=10) == "closed"
    assert h.unavailable(now=10) == {}
