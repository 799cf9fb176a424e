"""The door: hostile input is refused before it can reach a provider or the ledger.

Choice (issue 13): text the ledger could not store is **rejected**, not escaped. A
NUL character (PostgreSQL refuses it in `text` and `json`) or a lone UTF-16
surrogate (not encodable as UTF-8 at all) anywhere in the JSON body, in a key or a
value, gets a 400 naming the field, as does a non-finite number (`NaN`,
`Infinity`, or a literal too large for a double), and a body nested more than
`MAX_DEPTH` deep. Rejecting keeps what we forward and what we bill exactly what the
client sent; escaping would silently change a prompt. Text that comes *back* from
upstreams is escaped instead on its way into the ledger (`ledger.memory.storable`),
because there is no one to reject it to.

Headers: above `MAX_HEADER_BYTES` in all they get a 431; a control character in a
value, or an `x-request-id` that is not 1-128 printable ASCII characters, a 400
naming the header. Errors are OpenAI-shaped, Anthropic-shaped on `/v1/messages`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard.errors import InvalidRequestError
from modelyard.server.messages.errors import shaped_error

MAX_DEPTH: Final = 64
MAX_HEADER_BYTES: Final = 64 * 1024
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
_CONTROL: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
REQUEST_ID: Final = re.compile(r"[\x21-\x7e]{1,128}")


def _shown(part: object) -> str:
    """A path component as it may appear in an error message (surrogates escaped)."""
    return str(part).encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\0")


def _where(path: tuple[object, ...]) -> str:
    return ".".join(_shown(p) for p in path) or "body"


def body_problem(value: Any) -> tuple[str, str] | None:
    """`(message, field)` for the first thing in a parsed JSON body that must be
    refused, or None. Iterative, so a deep body cannot exhaust the stack."""
    stack: list[tuple[tuple[object, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if len(path) > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep", _where(path[:MAX_DEPTH])
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return _text_problem(item), _where(path)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "is not a finite number (NaN and Infinity are not JSON)", _where(path)
        elif isinstance(item, dict):
            for key, sub in item.items():
                if _UNSTORABLE.search(key):
                    return f"has a key that {_text_problem(key)}", _where(path)
                stack.append(((*path, key), sub))
        elif isinstance(item, list):
            stack.extend(((*path, i), sub) for i, sub in enumerate(item))
    return None


def _text_problem(text: str) -> str:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    return "contains a lone UTF-16 surrogate, which is not valid Unicode text"


class HeadersTooLargeError(InvalidRequestError):
    status_code = 431
    code = "request_header_fields_too_large"


class GuardedRoute(APIRoute):
    """An `APIRoute` that refuses unstorable or non-finite JSON bodies with a 400
    (an `InvalidRequestError`, rendered by the app's or the route class's handler)
    before FastAPI validates them. The parsed body is cached on the request, so
    FastAPI does not parse it again."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH") and await request.body():
                try:
                    parsed = await request.json()
                except RecursionError:
                    raise InvalidRequestError(
                        f"request body is nested too deeply (> {MAX_DEPTH})"
                    ) from None
                except ValueError:
                    parsed = None  # not JSON: FastAPI's own error says so
                problem = body_problem(parsed)
                if problem is not None:
                    message, where = problem
                    raise InvalidRequestError(f"invalid request: {where} {message}", param=where)
            return await handler(request)

        return guarded


class HeaderGuard:
    """ASGI middleware: oversized headers and control characters get OpenAI errors.

    uvicorn parses headers before any app code runs; `modelyard serve` raises h11's
    buffer limit so that headers up to 1 MiB reach this check instead of uvicorn's
    plain-text 400 (see README)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = header_problem(scope["headers"])
            if problem is not None:
                await shaped_error(scope["path"], problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def header_problem(headers: list[tuple[bytes, bytes]]) -> InvalidRequestError | None:
    """Why the request headers are unacceptable, or None."""
    size = sum(len(k) + len(v) + 4 for k, v in headers)
    if size > MAX_HEADER_BYTES:
        return HeadersTooLargeError(
            f"request headers are too large ({size} bytes; the limit is {MAX_HEADER_BYTES})"
        )
    for key, value in headers:
        name = key.decode("latin-1")
        if _CONTROL.search(value):
            return InvalidRequestError(f"header {name} contains a control character", param=name)
        if name == "x-request-id" and not REQUEST_ID.fullmatch(value.decode("latin-1")):
            return InvalidRequestError(
                "header x-request-id must be 1-128 printable ASCII characters", param=name
            )
    return None
