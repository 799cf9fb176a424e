"""A fake upstream that speaks OpenAI chat completions and embeddings, Anthropic
Messages and the Gemini API.

Serve `create_fake_upstream(state)` with uvicorn and point an `openai` deployment
at `http://host:port/v1`, an `anthropic` deployment at `http://host:port` and a
`gemini` deployment at `http://host:port/v1beta`::

    state = FakeUpstream(openai_key="sk-test-o", anthropic_key="sk-ant-test-a")
    app = create_fake_upstream(state)
    state.script.push("/v1/chat/completions", status=429, headers={"retry-after": "1"})
    state.script.push_fault("/v1/messages", Fault.overloaded())   # see `faults`
    state.faults = FaultProfile(0.3, [Fault.reset(), Fault.error(503)], seed=1)
    ...
    assert state.requests[0].body["model"] == "gpt-test"

Requests are checked like the real APIs check them (auth headers, the body
against the SDKs' request types); answers are built from the SDKs' response
types. Scripted responses and faults are served, in order, before the default
behaviour; then the random `faults` profile, if any, is drawn from.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from modelyard.testing import (
    upstream_anthropic,
    upstream_embeddings,
    upstream_gemini,
    upstream_openai,
)
from modelyard.testing.faults import RAW_SEND_KEY, Fault, FaultProfile
from modelyard.testing.wire import WireFormat

OPENAI_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
ANTHROPIC_PATH = "/v1/messages"
# Gemini puts the model and method in the path; scripts and records use this prefix,
# and `RecordedRequest.url` keeps the whole path and query.
GEMINI_PATH = "/v1beta/models"
_SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "proxy-authorization", "x-goog-api-key"}
)

Body = dict[str, Any] | list[Any] | str | bytes | None


@dataclass
class RecordedRequest:
    """One request the fake received. Secret header values read `[redacted]`;
    `usage` is the usage object the fake answered with (None for errors and
    scripted responses); `fault` is the label of the fault injected, if any
    (`scripted` is then true as well); `url` is the request's path and query."""

    path: str
    headers: dict[str, str]
    body: Any
    usage: dict[str, Any] | None = None
    scripted: bool = False
    fault: str | None = None
    url: str = ""


@dataclass(frozen=True)
class ScriptedResponse:
    """A canned answer. A dict or list `body` is sent as JSON; `chunks` (instead of
    `body`) are streamed one by one, `chunk_delay_s` apart, e.g. to cut an SSE
    stream short; `delay_s` waits before answering at all."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = None
    chunks: tuple[str, ...] | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0

    async def render(self) -> Response:
        """The Starlette response for this script entry."""
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.chunks is not None:
            return StreamingResponse(
                self._stream(),
                status_code=self.status,
                headers=self.headers,
                media_type=self.headers.get("content-type", "text/event-stream"),
            )
        if isinstance(self.body, dict | list):
            return JSONResponse(self.body, status_code=self.status, headers=self.headers)
        content = self.body if self.body is not None else b""
        return Response(content, status_code=self.status, headers=self.headers)

    async def _stream(self) -> AsyncIterator[str]:
        for chunk in self.chunks or ():
            yield chunk
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)


class Script:
    """Queues of scripted responses per path, consumed first-in first-out. Thread-safe:
    tests push from their thread while the server pops in its own."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[ScriptedResponse | Fault]] = defaultdict(deque)
        self._lock = threading.Lock()

    def push(
        self,
        path: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        body: Body = None,
        chunks: list[str] | None = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
    ) -> None:
        """Answer the next request to `path` with this response instead of the default."""
        entry = ScriptedResponse(
            status,
            dict(headers or {}),
            body,
            tuple(chunks) if chunks is not None else None,
            delay_s,
            chunk_delay_s,
        )
        with self._lock:
            self._queues[path].append(entry)

    def push_fault(self, path: str, fault: Fault, times: int = 1) -> None:
        """Answer the next `times` requests to `path` with `fault` (see `faults`)."""
        with self._lock:
            self._queues[path].extend([fault] * times)

    def pop(self, path: str) -> ScriptedResponse | Fault | None:
        """The next scripted response or fault for `path`, or None when none is queued."""
        with self._lock:
            queue = self._queues.get(path)
            return queue.popleft() if queue else None

    def pending(self, path: str | None = None) -> int:
        """How many scripted responses are still queued (for `path`, or in all)."""
        with self._lock:
            if path is not None:
                return len(self._queues.get(path, ()))
            return sum(len(q) for q in self._queues.values())

    def clear(self) -> None:
        """Drop every queued response."""
        with self._lock:
            self._queues.clear()


@dataclass
class FakeUpstream:
    """The fake's state: expected keys (None accepts any), scripts, what it received.

    `cached_tokens` is reported as prompt-cache hits on every default answer
    (OpenAI `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`).
    `gemini_thoughts` is reported as Gemini `thoughtsTokenCount` (thinking tokens).
    `faults`, when set, fails a random share of the requests the script leaves over.
    """

    openai_key: str | None = None
    anthropic_key: str | None = None
    gemini_key: str | None = None
    cached_tokens: int = 0
    gemini_thoughts: int = 0
    script: Script = field(default_factory=Script)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: FaultProfile | None = None

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to `path`, oldest first."""
        return [r for r in list(self.requests) if r.path == path]

    def reset(self) -> None:
        """Forget recorded requests and queued scripts."""
        self.requests.clear()
        self.script.clear()


def _safe_headers(headers: Headers) -> dict[str, str]:
    return {k: "[redacted]" if k.lower() in _SECRET_HEADERS else v for k, v in headers.items()}


Responder = Callable[[FakeUpstream, Headers, Any, RecordedRequest], Response]


def _endpoint(
    state: FakeUpstream, path: str, fmt: WireFormat, respond: Responder
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        record = RecordedRequest(path, _safe_headers(request.headers), body, url=url)
        state.requests.append(record)
        scripted = state.script.pop(path)
        if scripted is None and state.faults is not None:
            scripted = state.faults.draw(path)
        if isinstance(scripted, ScriptedResponse):
            record.scripted = True
            return await scripted.render()
        if isinstance(scripted, Fault):
            record.scripted, record.fault = True, scripted.label
            stream = isinstance(body, dict) and body.get("stream") is True
            stream = stream or request.url.path.endswith(":streamGenerateContent")
            return await scripted.respond(
                fmt, stream, lambda: respond(state, request.headers, body, record)
            )
        return respond(state, request.headers, body, record)

    return endpoint


async def _health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


class _FakeApp(Starlette):
    """Starlette that keeps the server's own `send` in the scope: a connection-reset
    fault reaches the connection through it (Starlette's middleware wraps `send`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


def create_fake_upstream(state: FakeUpstream | None = None) -> Starlette:
    """The fake upstream app; its state is `app.state.upstream` (a `FakeUpstream`)."""
    state = state if state is not None else FakeUpstream()
    app = _FakeApp(
        routes=[
            Route(
                OPENAI_PATH,
                _endpoint(state, OPENAI_PATH, "openai", upstream_openai.respond),
                methods=["POST"],
            ),
            Route(
                EMBEDDINGS_PATH,
                _endpoint(state, EMBEDDINGS_PATH, "openai", upstream_embeddings.respond),
                methods=["POST"],
            ),
            Route(
                ANTHROPIC_PATH,
                _endpoint(state, ANTHROPIC_PATH, "anthropic", upstream_anthropic.respond),
                methods=["POST"],
            ),
            Route(
                GEMINI_PATH + "/{target}",
                _endpoint(state, GEMINI_PATH, "gemini", upstream_gemini.respond),
                methods=["POST"],
            ),
            Route("/health", _health, methods=["GET"]),
        ]
    )
    app.state.upstream = state
    return app
