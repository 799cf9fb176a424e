"""Every modelyard error maps to a documented Anthropic (status, type) pair."""

from __future__ import annotations

import pytest

from modelyard.errors import (
    AllAttemptsFailedError,
    AuthenticationError,
    BudgetExceededError,
    ContextLengthError,
    ModelNotFoundError,
    ModelyardError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitedError,
    UpstreamRequestError,
)
from modelyard.providers.anthropic_wire import ERROR_STATUS
from modelyard.server.messages.errors import anthropic_status, error_response

CASES: list[tuple[ModelyardError, int, str]] = [
    (ContextLengthError("too long"), 400, "invalid_request_error"),
    (AuthenticationError("who"), 401, "authentication_error"),
    (BudgetExceededError("spent", resets_at="2026-12-01T00:00:00Z"), 402, "billing_error"),
    (PermissionDeniedError("no"), 403, "permission_error"),
    (ModelNotFoundError("x"), 404, "not_found_error"),
    (PayloadTooLargeError("big"), 413, "request_too_large"),
    (RateLimitedError("slow down", retry_after=3), 429, "rate_limit_error"),
    (ProviderRateLimitError("upstream 429", retry_after=2.5), 429, "rate_limit_error"),
    (ProviderServerError("boom"), 500, "api_error"),
    (ProviderTimeoutError("slow"), 504, "timeout_error"),
    (ProviderOverloadedError("busy"), 529, "overloaded_error"),
    (AllAttemptsFailedError("all failed", []), 529, "overloaded_error"),
    (UpstreamRequestError("unprocessable", upstream_status=422), 422, "invalid_request_error"),
]


@pytest.mark.parametrize(
    ("error", "status", "kind"), CASES, ids=[type(c[0]).__name__ for c in CASES]
)
def test_status_and_type(error: ModelyardError, status: int, kind: str) -> None:
    assert anthropic_status(error) == (status, kind)
    if status in ERROR_STATUS.values():
        assert ERROR_STATUS[kind] == status  # the documented pair


def test_retry_after_and_budget_reset_headers() -> None:
    assert error_response(RateLimitedError("x", retry_after=3)).headers["retry-after"] == "3"
    upstream = error_response(ProviderRateLimitError("x", retry_after=2.5))
    assert upstream.headers["retry-after"] == "2"
    budget = error_response(BudgetExceededError("x", resets_at="2026-12-01T00:00:00Z"))
    assert budget.headers["x-modelyard-budget-resets-at"] == "2026-12-01T00:00:00Z"
