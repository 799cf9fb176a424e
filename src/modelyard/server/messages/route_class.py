"""The route class of the Anthropic routes: every error leaves in Anthropic's shape."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from modelyard.errors import InvalidRequestError, ModelyardError
from modelyard.server.guard import GuardedRoute
from modelyard.server.messages.errors import error_body, error_response, request_id_of
from modelyard.server.messages.schema import describe
from modelyard.server.render import SafeJSONResponse

log = logging.getLogger("modelyard.server")


class AnthropicRoute(GuardedRoute):
    """A guarded route whose every error, ours or unexpected, leaves in Anthropic's
    shape: the app-wide handlers (OpenAI shape) never see these routes' exceptions."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def shaped(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                message, param = describe(list(exc.errors()))
                error = InvalidRequestError(message, param=param)
                return error_response(error, request_id_of(request))
            except ModelyardError as exc:
                return error_response(exc, request_id_of(request))
            except HTTPException as exc:  # FastAPI's own: a body it could not even decode
                request_id = request_id_of(request)
                kind = "invalid_request_error" if exc.status_code < 500 else "api_error"
                body = error_body(kind, str(exc.detail), request_id)
                headers = {"request-id": request_id}
                return SafeJSONResponse(body, status_code=exc.status_code, headers=headers)
            except Exception as exc:  # our bug: logged, never a bare 500 page
                request_id = request_id_of(request)
                log.error("unhandled error in request %s", request_id, exc_info=exc)
                message = f"internal error in modelyard (request {request_id}; see server log)"
                body = error_body("api_error", message, request_id)
                return SafeJSONResponse(body, status_code=500, headers={"request-id": request_id})

        return shaped
