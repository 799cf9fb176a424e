"""Every error leaves the server as OpenAI-style JSON with the right status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from modelyard.errors import (
    BudgetExceededError,
    InvalidRequestError,
    ModelyardError,
    OverloadedError,
    RateLimitedError,
)
from modelyard.server.render import SafeJSONResponse as JSONResponse
from modelyard.server.scrub import scrub

log = logging.getLogger("modelyard.server")


def _error(
    status: int, message: str, type_: str, code: str | None, param: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def describe_validation(errors: list[Any]) -> tuple[str, str | None]:
    """One readable sentence from pydantic's error list, and the first bad field."""
    parts: list[str] = []
    first: str | None = None
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc)
        if err.get("type") == "json_invalid":
            detail = err.get("ctx", {}).get("error", "")
            return f"request body is not valid JSON: {detail}".rstrip(": "), None
        if err.get("type") == "missing" and not loc:
            return "request body is missing: send a JSON object", None
        first = first or where or None
        parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts[:5]), first


def client_error(exc: ModelyardError) -> dict[str, Any]:
    """The OpenAI error body a client sees: upstream text without internal hosts."""
    body = exc.to_openai()
    body["error"]["message"] = scrub(str(body["error"]["message"]))
    return body


def _retry(exc: ModelyardError) -> dict[str, str] | None:
    """`Retry-After` for our own rate limit (429); the budget's reset for a 402."""
    if isinstance(exc, RateLimitedError | OverloadedError):
        return {"retry-after": str(int(exc.retry_after))}
    if isinstance(exc, BudgetExceededError) and exc.resets_at:
        return {"x-modelyard-budget-resets-at": exc.resets_at}
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Map modelyard errors, validation errors and stray HTTP errors to OpenAI JSON."""

    @app.exception_handler(ModelyardError)
    async def _modelyard(_: Request, exc: ModelyardError) -> JSONResponse:
        return JSONResponse(client_error(exc), status_code=exc.http_status, headers=_retry(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = describe_validation(list(exc.errors()))
        return JSONResponse(InvalidRequestError(message, param=param).to_openai(), status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error(exc.status_code, str(exc.detail), type_, None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None) or "-"
        log.error("unhandled error in request %s", request_id, exc_info=exc)
        message = f"internal error in modelyard (request {request_id}; see server log)"
        return _error(500, message, "server_error", None)
