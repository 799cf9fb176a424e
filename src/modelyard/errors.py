"""modelyard's one exception tree.

Every failure a caller can see is one of these; provider errors are translated
into it at a single boundary (`modelyard.providers.http`). Each class knows the
HTTP status and OpenAI error `type` it is reported with, and whether another
attempt (the same model later, or the next qualified model) may succeed. The
executor reads `retryable`; it never keeps isinstance lists.

    ModelyardError
    ├── ConfigError                      start-up only, never reaches a caller
    ├── InvalidRequestError         400  the caller's fault
    │   ├── ContextLengthError      400  prompt + max_tokens fits no model's window
    │   └── NoQualifiedModelError   400  no model meets the request's requirements
    ├── AuthenticationError         401  missing, unknown, revoked or expired key
    ├── PermissionDeniedError       403  a key used outside its models/policies/data classes
    ├── BudgetExceededError         402  no qualified model fits a budget (names it, and
    │                                    when it resets)
    ├── RateLimitedError            429  a key's requests/tokens per minute; Retry-After
    ├── PayloadTooLargeError        413  the request body is over the server's limit
    ├── ModelNotFoundError          404  unknown model / alias / policy name
    ├── AnswerRejectedError              a cascade's verifier said no: ledger only
    ├── ClientClosedError           499  the caller disconnected; upstream call cancelled
    ├── ServiceUnavailableError     503  nothing can serve (no provider keys, ...)
    │   ├── AllAttemptsFailedError  503  every qualified model was tried and failed
    │   └── OverloadedError         503  too many requests in flight: shed, Retry-After
    └── ProviderError               502  an upstream call failed
        ├── ProviderConnectionError 502  connect refused / reset      retryable
        ├── ProviderTimeoutError    504  connect / first token / total retryable
        ├── ProviderRateLimitError  429  upstream 429, `retry_after`   retryable
        ├── ProviderOverloadedError 503  upstream 529 / overloaded     retryable
        ├── ProviderServerError     502  upstream 5xx                  retryable
        ├── ProviderResponseError   502  malformed or truncated body   retryable
        ├── ProviderAuthError       502  our key was refused: fail over, do not retry it
        └── UpstreamRequestError    4xx  the upstream says the *request* is bad:
            │                            returned as is, never failed over
            └── ContentFilteredError 400 the provider's safety filter blocked the
                                         prompt or the answer (code content_filter)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from modelyard.types import Completion


class ModelyardError(Exception):
    """Base of every modelyard error."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    @property
    def http_status(self) -> int:
        """The status the caller sees (an upstream's own 4xx is passed through)."""
        return self.status_code

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI error body: `{"error": {"message", "type", "param", "code"}}`."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(ModelyardError):
    """The configuration is invalid; raised at start-up with file, path and problem."""

    code = "invalid_config"


class InvalidRequestError(ModelyardError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class ContextLengthError(InvalidRequestError):
    code = "context_length_exceeded"


class NoQualifiedModelError(InvalidRequestError):
    """No model in the catalog meets the request; `reasons` maps model → why not."""

    code = "no_qualified_model"

    def __init__(self, message: str, *, reasons: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or {}


class ClientClosedError(ModelyardError):
    """The caller hung up; its upstream call was cancelled (and still billed)."""

    status_code = 499
    error_type = "client_closed_request"
    code = "client_closed_request"


class AuthenticationError(ModelyardError):
    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDeniedError(ModelyardError):
    status_code = 403
    error_type = "permission_error"
    code = "permission_denied"


class BudgetExceededError(ModelyardError):
    """Nothing qualified fits a budget: `budget` names it, `resets_at` says when."""

    status_code = 402
    error_type = "insufficient_quota"
    code = "budget_exceeded"

    def __init__(self, message: str, *, budget: str = "", resets_at: str | None = None) -> None:
        super().__init__(message)
        self.budget = budget
        self.resets_at = resets_at


class RateLimitedError(ModelyardError):
    """A key's own rate limit (not an upstream's): retry after `retry_after` seconds."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLargeError(ModelyardError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class ModelNotFoundError(ModelyardError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class ServiceUnavailableError(ModelyardError):
    status_code = 503
    error_type = "service_unavailable"
    code = "service_unavailable"


class OverloadedError(ServiceUnavailableError):
    """The gateway has as many requests in flight as it is allowed: this one is shed
    (answered at once, never routed) instead of queueing; retry after `retry_after`."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AllAttemptsFailedError(ServiceUnavailableError):
    """Every attempt failed; the individual errors are kept in `attempts`."""

    code = "all_attempts_failed"

    def __init__(self, message: str, attempts: Sequence[tuple[str, ProviderError]]) -> None:
        super().__init__(message)
        self.attempts = list(attempts)
        self.group = ExceptionGroup(message, [e for _, e in attempts]) if attempts else None


class ProviderError(ModelyardError):
    """An upstream call failed. `provider` names the deployment, never its key."""

    status_code = 502
    error_type = "upstream_error"
    code = "upstream_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        upstream_status: int | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.provider = provider
        self.upstream_status = upstream_status


class ProviderConnectionError(ProviderError):
    code = "upstream_connection_error"


class ProviderTimeoutError(ProviderError):
    status_code = 504
    code = "upstream_timeout"


class ProviderRateLimitError(ProviderError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "upstream_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProviderOverloadedError(ProviderError):
    status_code = 503
    code = "upstream_overloaded"


class ProviderServerError(ProviderError):
    code = "upstream_server_error"


class ProviderResponseError(ProviderError):
    code = "upstream_bad_response"


class ProviderAuthError(ProviderError):
    code = "upstream_auth_error"


class UpstreamRequestError(ProviderError):
    """The upstream rejected the request itself; the caller gets its status and message."""

    error_type = "invalid_request_error"
    code = "upstream_invalid_request"
    retryable = False

    def __init__(self, message: str, *, upstream_status: int = 400, **kw: Any) -> None:
        super().__init__(message, upstream_status=upstream_status, **kw)

    @property
    def http_status(self) -> int:
        return self.upstream_status or 400


class ContentFilteredError(UpstreamRequestError):
    """The provider's safety filter blocked the prompt, or the answer before any of
    it was usable (Gemini `promptFeedback.blockReason`, a `SAFETY` finish). The
    caller's content is what tripped it, so it is not failed over: another model
    would be billed for the same refusal, and filters differ only in degree."""

    code = "content_filter"


class LowConfidenceError(ProviderError):
    """Not a failure: a classifier (a specialist) answered, but with a calibrated
    confidence below its threshold, so the request escalates to the next qualified
    model. The executor records the attempt as `escalated` (billed, confidence
    kept), does not count it against the deployment's health, and returns the
    carried `completion` if no candidate is left to escalate to."""

    code = "low_confidence"

    def __init__(
        self,
        message: str,
        *,
        confidence: float,
        threshold: float,
        completion: Completion,
        oos_score: float | None = None,
        oos_threshold: float | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.confidence = confidence
        self.threshold = threshold
        self.completion = completion
        self.oos_score = oos_score
        self.oos_threshold = oos_threshold


class OutOfScopeError(LowConfidenceError):
    """A specialist answered a request that belongs to none of its classes (its
    out-of-scope score reached its threshold): escalated like a low-confidence
    answer, but recorded as its own error class so the ledger tells the two apart."""

    code = "out_of_scope"


class AnswerRejectedError(ModelyardError):
    """Not a failure: a cascade's verifier rejected a step's answer, so the request
    escalated to the next step. Never raised to the caller; it names the reason on
    the `escalated` ledger record of the rejected answer."""

    code = "answer_rejected"
