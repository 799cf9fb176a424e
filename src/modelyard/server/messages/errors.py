"""Errors on the Anthropic routes, in Anthropic's shape and with its statuses.

`{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}` with the
status Anthropic documents for that type, and a `request-id` header. modelyard's own
statuses without an Anthropic counterpart are mapped to the nearest documented one:
an upstream failure (502) is `api_error` 500, nothing able to serve (503) is
`overloaded_error` 529 (which the SDKs retry), a budget (402) is `billing_error`.
An upstream's own 4xx keeps its status.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

from fastapi import Request

from modelyard.errors import (
    BudgetExceededError,
    ModelyardError,
    ProviderRateLimitError,
    RateLimitedError,
)
from modelyard.providers.anthropic_wire import ERROR_STATUS
from modelyard.server.render import SafeJSONResponse
from modelyard.server.scrub import scrub

MESSAGES_PATH: Final = "/v1/messages"
_TYPE_FOR_STATUS: Final = {status: kind for kind, status in ERROR_STATUS.items()}
# modelyard statuses Anthropic does not document → the documented one closest in meaning.
_STATUS_FOR_OURS: Final = {499: 400, 502: 500, 503: 529}


def is_anthropic_path(path: str) -> bool:
    """Whether a request path is one of the Anthropic routes (errors in its shape)."""
    return path == MESSAGES_PATH or path.startswith(MESSAGES_PATH + "/")


def anthropic_status(exc: ModelyardError) -> tuple[int, str]:
    """The status and Anthropic error type `exc` is reported with."""
    status = _STATUS_FOR_OURS.get(exc.http_status, exc.http_status)
    kind = _TYPE_FOR_STATUS.get(status)
    if kind is None:
        kind = "invalid_request_error" if status < 500 else "api_error"
    return status, kind


def error_body(kind: str, message: str, request_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def _headers(exc: ModelyardError, request_id: str) -> dict[str, str]:
    headers = {"request-id": request_id, "x-request-id": request_id}
    wait = exc.retry_after if isinstance(exc, RateLimitedError | ProviderRateLimitError) else None
    if wait is not None:
        headers["retry-after"] = str(int(wait))
    elif isinstance(exc, BudgetExceededError) and exc.resets_at:
        headers["x-modelyard-budget-resets-at"] = exc.resets_at
    return headers


def error_response(
    exc: ModelyardError, request_id: str | None = None, extra: dict[str, str] | None = None
) -> SafeJSONResponse:
    """The Anthropic-shaped response for `exc` (upstream text without internal hosts)."""
    request_id = request_id or new_request_id()
    status, kind = anthropic_status(exc)
    headers = {**_headers(exc, request_id), **(extra or {})}
    body = error_body(kind, scrub(exc.message), request_id)
    return SafeJSONResponse(body, status_code=status, headers=headers)


def shaped_error(
    path: str, exc: ModelyardError, headers: dict[str, str] | None = None
) -> SafeJSONResponse:
    """For the middlewares that refuse a request before any route runs: the error in
    Anthropic's shape on the Anthropic routes, in OpenAI's everywhere else."""
    if is_anthropic_path(path):
        return error_response(exc, extra=headers)
    return SafeJSONResponse(exc.to_openai(), exc.http_status, headers=headers)


def sse_error(exc: ModelyardError, message: str) -> str:
    """The `event: error` SSE event that ends a stream which failed after it began."""
    _, kind = anthropic_status(exc)
    data = {"type": "error", "error": {"type": kind, "message": message}}
    return f"event: error\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def request_id_of(request: Request) -> str:
    """The request's id: the one the route chose, the caller's, or a new one."""
    chosen: str | None = getattr(request.state, "request_id", None)
    return chosen or request.headers.get("x-request-id") or new_request_id()
