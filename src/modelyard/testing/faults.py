"""Faults the fake upstream injects: scripted per request, or drawn at random.

A `Fault` describes one way an upstream call goes wrong; it is format-agnostic and
rendered in the wire format of the path it is served on (OpenAI, Anthropic or
Gemini; Gemini's 429 states its wait as a `google.rpc.RetryInfo` in the body)::

    state.script.push_fault(OPENAI_PATH, Fault.error(500))
    state.script.push_fault(ANTHROPIC_PATH, Fault.overloaded())          # 529
    state.script.push_fault(OPENAI_PATH, Fault.rate_limited(0.5, in_ms=True))
    state.script.push_fault(OPENAI_PATH, Fault.stream_cut(after_chunks=3))
    state.faults = FaultProfile(0.3, [FaultKind.CONNECTION_RESET, Fault.error(503)], seed=7)

Kinds (`FaultKind`), and what the caller sees:

- `http_error`: `status` with the provider's own error body (OpenAI `{"error": {...}}`,
  Anthropic `{"type": "error", "error": {"type": "overloaded_error", ...}}`) and,
  when set, `retry-after` (seconds) / `retry-after-ms` headers.
- `latency`: the normal answer, after `latency_s` without any response bytes.
- `slow_first_token`: status and headers at once, then `first_chunk_delay_s` before
  the first SSE event (or, not streamed, before the body).
- `truncated_body`: status 200 and a valid prefix of the answer cut mid-object: the
  JSON body cut at `keep` of its length (its own Content-Length, so the HTTP message
  is complete); a stream sends `after_chunks` whole events and half the next one.
- `stream_cut`: a stream that ends cleanly after `after_chunks` events, with no
  `[DONE]` / `message_stop` (not streamed: like `truncated_body`).
- `connection_reset`: the socket is reset (TCP RST) after the request was read,
  before any response byte: the client sees "connection reset by peer" or "server
  disconnected without sending a response".

How the reset works under uvicorn: the fake app keeps uvicorn's own `send` (a bound
method of its per-request cycle, whose `transport` is the connection) in the scope;
the fault sets `SO_LINGER` to zero on that socket and aborts the transport, then
waits for uvicorn to mark the request disconnected, so uvicorn writes nothing more
and logs nothing. Under a server without that shape (httpx's ASGI transport), the
fault starts a 200 response and raises `ConnectionResetError` instead: uvicorn would
then close the connection after the status line (and log the exception); an
in-process transport re-raises it to the client.

`latency_s` delays any kind before its first byte.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from modelyard.testing import upstream_anthropic, upstream_gemini, upstream_openai
from modelyard.testing.wire import WireFormat

# The scope key under which the fake app keeps the server's own `send` callable.
RAW_SEND_KEY = "modelyard.fake_upstream.raw_send"


class FaultKind(StrEnum):
    """The ways an upstream call can fail; see the module docstring."""

    HTTP_ERROR = "http_error"
    LATENCY = "latency"
    SLOW_FIRST_TOKEN = "slow_first_token"
    TRUNCATED_BODY = "truncated_body"
    STREAM_CUT = "stream_cut"
    CONNECTION_RESET = "connection_reset"


@dataclass(frozen=True)
class Fault:
    """One injected failure; build it with the class methods."""

    kind: FaultKind
    status: int = 200
    latency_s: float = 0.0
    first_chunk_delay_s: float = 0.0
    retry_after_s: float | None = None
    retry_after_ms: float | None = None
    message: str | None = None
    error_type: str | None = None
    after_chunks: int = 1
    keep: float = 0.5

    @classmethod
    def error(
        cls,
        status: int = 500,
        *,
        message: str | None = None,
        error_type: str | None = None,
        retry_after_s: float | None = None,
        retry_after_ms: float | None = None,
        latency_s: float = 0.0,
    ) -> Fault:
        """An HTTP error with the provider's error body; `error_type` overrides the
        status's usual type (e.g. `overloaded_error` on a 500)."""
        return cls(
            FaultKind.HTTP_ERROR,
            status=status,
            message=message,
            error_type=error_type,
            retry_after_s=retry_after_s,
            retry_after_ms=retry_after_ms,
            latency_s=latency_s,
        )

    @classmethod
    def rate_limited(cls, retry_after_s: float = 1.0, *, in_ms: bool = False) -> Fault:
        """A 429 whose wait is sent as `retry-after` seconds, or as `retry-after-ms`."""
        if in_ms:
            return cls.error(429, retry_after_ms=retry_after_s * 1000)
        return cls.error(429, retry_after_s=retry_after_s)

    @classmethod
    def overloaded(cls, status: int = 529) -> Fault:
        """Anthropic's 529 `overloaded_error` (the same body on the OpenAI path)."""
        return cls.error(status, error_type="overloaded_error")

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """The normal answer, `seconds` late."""
        return cls(FaultKind.LATENCY, latency_s=seconds)

    @classmethod
    def slow_first_token(cls, seconds: float) -> Fault:
        """Headers at once, then `seconds` before the first event (or the body)."""
        return cls(FaultKind.SLOW_FIRST_TOKEN, first_chunk_delay_s=seconds)

    @classmethod
    def truncated(cls, *, after_chunks: int = 1, keep: float = 0.5) -> Fault:
        """A 200 whose body is a valid prefix cut mid-object."""
        return cls(FaultKind.TRUNCATED_BODY, after_chunks=after_chunks, keep=keep)

    @classmethod
    def stream_cut(cls, *, after_chunks: int = 1) -> Fault:
        """A stream that stops after `after_chunks` events, without its terminator (a
        stream with no more events than that is sent whole)."""
        return cls(FaultKind.STREAM_CUT, after_chunks=after_chunks)

    @classmethod
    def reset(cls) -> Fault:
        """The connection is reset before any response byte."""
        return cls(FaultKind.CONNECTION_RESET)

    @property
    def label(self) -> str:
        """A short name for reports: the kind, with the status for HTTP errors."""
        if self.kind is FaultKind.HTTP_ERROR:
            return f"{self.kind.value}:{self.status}"
        return self.kind.value

    async def respond(
        self, fmt: WireFormat, stream: bool, default: Callable[[], Response]
    ) -> Response:
        """The faulty response; `default` builds the answer the fake would have given."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.kind is FaultKind.HTTP_ERROR:
            return error_response(fmt, self)
        if self.kind is FaultKind.CONNECTION_RESET:
            return ResetResponse()
        answer = default()
        if self.kind is FaultKind.LATENCY or answer.status_code != 200:
            return answer
        if self.kind is FaultKind.SLOW_FIRST_TOKEN:
            return _rewrite(answer, _late(_body_of(answer), self.first_chunk_delay_s))
        if isinstance(answer, StreamingResponse) and stream:
            ragged = self.kind is FaultKind.TRUNCATED_BODY
            return _rewrite(answer, _cut(answer.body_iterator, self.after_chunks, ragged))
        cut = answer.body[: max(1, min(len(answer.body) - 1, int(len(answer.body) * self.keep)))]
        return Response(cut, status_code=200, media_type="application/json")


# --- error responses ----------------------------------------------------------------


def error_body(fmt: WireFormat, fault: Fault) -> dict[str, Any]:
    """The provider's own error envelope for `fault.status`."""
    if fmt == "openai":
        return upstream_openai.status_error_body(fault.status, fault.message, fault.error_type)
    if fmt == "gemini":
        # Gemini states the wait in the body (google.rpc.RetryInfo), not in a header.
        delay = fault.retry_after_s
        if delay is None and fault.retry_after_ms is not None:
            delay = fault.retry_after_ms / 1000
        return upstream_gemini.error_body(fault.status, fault.message, retry_delay_s=delay)
    return upstream_anthropic.status_error_body(fault.status, fault.message, fault.error_type)


def error_response(fmt: WireFormat, fault: Fault) -> Response:
    """The HTTP error response, with its retry headers and the provider's request id."""
    headers = {"x-request-id" if fmt == "openai" else "request-id": "req_fake0001"}
    if fmt == "gemini":
        return JSONResponse(error_body(fmt, fault), status_code=fault.status)
    if fault.retry_after_s is not None:
        headers["retry-after"] = _number(fault.retry_after_s)
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = _number(fault.retry_after_ms)
    return JSONResponse(error_body(fmt, fault), status_code=fault.status, headers=headers)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --- body rewrites -------------------------------------------------------------------


def _body_of(answer: Response) -> AsyncIterator[str | bytes | memoryview]:
    if isinstance(answer, StreamingResponse):
        return answer.body_iterator  # type: ignore[return-value]
    return _once(answer.body)


async def _once(body: bytes | memoryview) -> AsyncIterator[bytes | memoryview]:
    yield body


def _rewrite(answer: Response, body: AsyncIterator[str | bytes | memoryview]) -> Response:
    """`answer`'s status and headers over a new body (a Content-Length is kept)."""
    headers = dict(answer.headers)
    return StreamingResponse(body, status_code=answer.status_code, headers=headers)


async def _late(
    body: AsyncIterator[str | bytes | memoryview], delay_s: float
) -> AsyncIterator[str | bytes | memoryview]:
    await asyncio.sleep(delay_s)
    async for piece in body:
        yield piece


async def _cut(events: Any, keep: int, ragged: bool) -> AsyncIterator[str | bytes | memoryview]:
    """The first `keep` events, then (when `ragged`) the first half of the next one."""
    sent = 0
    async for event in events:
        if sent == keep:
            if ragged:
                yield event[: max(1, len(event) // 2)]
            return
        sent += 1
        yield event


# --- connection reset ----------------------------------------------------------------


class ResetResponse(Response):
    """Resets the connection instead of answering (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cycle = getattr(scope.get(RAW_SEND_KEY), "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionResetError("fake upstream: connection reset (fault injected)")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        for _ in range(100):  # connection_lost runs on the next loop iteration
            if getattr(cycle, "disconnected", True):
                return
            await asyncio.sleep(0)


# --- random faults -------------------------------------------------------------------


@dataclass
class FaultProfile:
    """Fail `failure_rate` of requests, each with a fault drawn from `kinds`.

    Draws come from one `random.Random(seed)`, one per request in arrival order, so a
    run with the same arrival order injects the same faults. A bare `FaultKind` stands
    for its default fault (`http_error` → 500, `latency`/`slow_first_token` → 5 s).
    `paths`, when given, limits the profile to those request paths. `drawn` counts
    the injected faults by label.
    """

    failure_rate: float
    kinds: Sequence[Fault | FaultKind]
    seed: int | None = 0
    paths: frozenset[str] | None = None
    drawn: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False, repr=False)
    _faults: tuple[Fault, ...] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not 0 <= self.failure_rate <= 1:
            raise ValueError(f"failure_rate must be within [0, 1], got {self.failure_rate}")
        if not self.kinds and self.failure_rate:
            raise ValueError("a failing profile needs at least one fault kind")
        self._rng = random.Random(self.seed)
        self._faults = tuple(_default_fault(k) for k in self.kinds)

    def draw(self, path: str) -> Fault | None:
        """The fault for the next request to `path`, or None to answer normally."""
        if self.paths is not None and path not in self.paths:
            return None
        with self._lock:
            roll, pick = self._rng.random(), self._rng.randrange(max(1, len(self._faults)))
            if roll >= self.failure_rate:
                return None
            fault = self._faults[pick]
            self.drawn[fault.label] += 1
            return fault


def _default_fault(kind: Fault | FaultKind) -> Fault:
    if isinstance(kind, Fault):
        return kind
    defaults: dict[FaultKind, Fault] = {
        FaultKind.HTTP_ERROR: Fault.error(500),
        FaultKind.LATENCY: Fault.latency(5.0),
        FaultKind.SLOW_FIRST_TOKEN: Fault.slow_first_token(5.0),
        FaultKind.TRUNCATED_BODY: Fault.truncated(),
        FaultKind.STREAM_CUT: Fault.stream_cut(),
        FaultKind.CONNECTION_RESET: Fault.reset(),
    }
    return defaults[kind]
