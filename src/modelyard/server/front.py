"""The front door's hardening (issue 12, point 6): what is refused before routing.

- `FrontDoor` (ASGI middleware): a `Host` header not in the allowed hosts gets a
  400 (DNS rebinding: a web page must not reach a loopback gateway under its own
  name), and a body over `max_body_bytes` gets a 413 in the OpenAI error shape
  (Anthropic's on `/v1/messages`),
  whether it announces its length or streams it chunked.
- `header_timeout_protocol(s)`: uvicorn's h11 or httptools protocol with a deadline
  on reading a request's headers (slowloris): a connection that has not sent
  complete headers within `s` seconds of its first byte is closed. uvicorn has only
  a keep-alive timer, which any single byte resets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Final, Literal

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelyard.errors import InvalidRequestError, PayloadTooLargeError
from modelyard.server.messages.errors import shaped_error

DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1")
DEFAULT_HEADER_TIMEOUT_S: Final = 10.0


def host_name(value: str) -> str:
    """The host part of a `Host` header value (no port, IPv6 brackets removed)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class FrontDoor:
    """Host check and body-size limit (see the module docstring). `allowed_hosts`
    None or containing `*` allows any host."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}
        self.allowed_hosts = None if hosts is None or "*" in hosts else hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.allowed_hosts is not None:
            host = host_name(headers.get("host", ""))
            if host not in self.allowed_hosts:
                error = InvalidRequestError(f"host '{host[:100]}' is not allowed", param="host")
                await shaped_error(scope["path"], error)(scope, receive, send)
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        if scope["method"] in ("POST", "PUT", "PATCH") and not length.isdigit():
            body = await self._read(receive)
            if body is None:
                await self._too_large(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _read(self, receive: Receive) -> bytes | None:
        """A chunked body, or None once it passes the limit."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(parts)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLargeError(
            f"request body is too large (the limit is {self.max_body_bytes} bytes)"
        )
        response = shaped_error(scope["path"], error, {"connection": "close"})
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _HeaderDeadline:
    """The slowloris deadline, shared by both protocols: armed when a request's first
    byte (or the connection) arrives, disarmed once its headers are complete."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self._awaiting_headers() and not self.transport.is_closing():
            self.transport.close()

    def _awaiting_headers(self) -> bool:
        raise NotImplementedError


class HeaderTimeoutH11(_HeaderDeadline, H11Protocol):
    """uvicorn's pure-Python h11 protocol with the header deadline."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE


class HeaderTimeoutHttpTools(_HeaderDeadline, HttpToolsProtocol):
    """uvicorn's httptools (llhttp, C) protocol with the header deadline: the faster
    parser, used by `modelyard serve` whenever httptools is installed."""

    _in_headers = True

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        self._in_headers = True
        self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self._in_headers


def header_timeout_protocol(
    timeout_s: float, *, parser: Literal["h11", "httptools"] = "h11"
) -> type[H11Protocol] | type[HttpToolsProtocol]:
    """uvicorn's protocol for `parser`, closing connections whose headers take over
    `timeout_s`."""
    base: type[HeaderTimeoutH11] | type[HeaderTimeoutHttpTools] = (
        HeaderTimeoutH11 if parser == "h11" else HeaderTimeoutHttpTools
    )
    return type(f"{base.__name__}{timeout_s:g}s", (base,), {"header_timeout_s": timeout_s})
