"""Pure transforms between modelyard's types and the OpenAI chat-completions wire format.

No I/O happens here, so every function is testable with plain dicts. The adapter in
`modelyard.providers.openai` does the HTTP and calls these. The same shapes serve
every OpenAI-compatible server (vLLM, Ollama, llama.cpp, Groq, OpenRouter, ...), so
parsing is lenient where those servers are known to differ from OpenAI.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any, get_args

from modelyard.errors import ProviderError, ProviderResponseError
from modelyard.providers.base import DeploymentSettings
from modelyard.providers.http import error_for_status
from modelyard.types import (
    ChatRequest,
    Chunk,
    Completion,
    FinishReason,
    FunctionCall,
    ToolCall,
    ToolCallDelta,
    Usage,
)

EXCERPT_CHARS = 200
"""How much of an unexpected body an error message quotes."""

# Fields the request model names but that must not reach the upstream as the caller set
# them: routing hints are ours, and streaming is decided by which adapter method runs.
_OWN_FIELDS = frozenset({"modelyard", "stream", "stream_options"})

_FINISH_REASONS: frozenset[str] = frozenset(get_args(FinishReason))
_FINISH_ALIASES: dict[str, FinishReason] = {
    "function_call": "tool_calls",  # the deprecated functions API
    "tool_call": "tool_calls",
    "max_tokens": "length",
    "model_length": "length",
}


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` cut to `limit` characters, marked when cut, for quoting in error messages."""
    return text if len(text) <= limit else text[:limit] + "…"


def build_headers(settings: DeploymentSettings) -> dict[str, str]:
    """Request headers; `Authorization` only when a key is configured (local servers have none)."""
    headers = {"Content-Type": "application/json"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    # Last, so a deployment can override (e.g. Azure's `api-key` scheme, custom auth).
    headers.update(settings.extra_headers)
    return headers


def build_body(request: ChatRequest, upstream_model: str, *, stream: bool) -> dict[str, Any]:
    """The JSON body for `POST /chat/completions`.

    `model` becomes `upstream_model`, None fields are dropped, modelyard's hints are
    removed and unknown OpenAI parameters are passed through. A streamed body always
    asks for usage, whatever the caller asked, because every call is billed.
    """
    extras = request.passthrough()
    body = request.model_dump(
        mode="json", exclude_none=True, by_alias=True, exclude=set(_OWN_FIELDS | extras.keys())
    )
    body.update({k: v for k, v in extras.items() if v is not None})
    body["model"] = upstream_model
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def map_finish_reason(value: Any) -> FinishReason:
    """OpenAI's `finish_reason`, normalised; None and unknown values count as `stop`."""
    if isinstance(value, str):
        if value in _FINISH_REASONS:
            return value  # type: ignore[return-value]
        return _FINISH_ALIASES.get(value, "stop")
    return "stop"


def _count(value: Any) -> int:
    # Compatible servers send null or omit counts they do not track.
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_usage(usage: Any) -> Usage:
    """OpenAI `usage` → `Usage`; a missing or malformed object counts as zero."""
    if not isinstance(usage, Mapping):
        return Usage()
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    if cached is None:
        cached = usage.get("prompt_cache_hit_tokens")  # DeepSeek reports its cache here
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cached_input_tokens=_count(cached),
    )


def _text(content: Any) -> str | None:
    # Some servers (Mistral) answer with a list of typed parts instead of a string.
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "".join(t for t in texts if isinstance(t, str))
    return str(content)


def _arguments(value: Any) -> str:
    # OpenAI sends a JSON string; some servers send the decoded object.
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _tool_calls(message: Mapping[str, Any], provider: str) -> tuple[ToolCall, ...]:
    raw = message.get("tool_calls") or []
    if not raw and isinstance(message.get("function_call"), Mapping):
        # The deprecated functions API answers with one id-less `function_call`.
        raw = [{"id": "call_0", "function": message["function_call"]}]
    calls = []
    for i, call in enumerate(raw):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise ProviderResponseError(
                _prefixed(
                    provider, f"malformed tool call: {excerpt(json.dumps(call, default=str))}"
                ),
                provider=provider,
            )
        # A few servers omit ids; the caller needs one to answer the call with.
        call_id = call.get("id") or f"call_{i}"
        calls.append(
            ToolCall(
                id=call_id,
                function=FunctionCall(
                    name=function["name"], arguments=_arguments(function.get("arguments"))
                ),
            )
        )
    return tuple(calls)


def _prefixed(provider: str, message: str) -> str:
    return f"{provider}: {message}" if provider else message


def parse_completion(body: Any, *, provider: str = "") -> Completion:
    """A `chat.completion` object → `Completion`.

    Raises `ProviderResponseError` when the body has no usable `choices`, or the
    matching `ProviderError` when a server reports an error inside a 200 response.
    """
    if isinstance(body, Mapping) and body.get("error") and not body.get("choices"):
        raise error_from_object(body["error"], provider=provider)
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], Mapping):
        raise ProviderResponseError(
            _prefixed(
                provider, f"response has no choices: {excerpt(json.dumps(body, default=str))}"
            ),
            provider=provider,
        )
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        message = {}
    tool_calls = _tool_calls(message, provider)
    content = _text(message.get("content"))
    if content is None and isinstance(message.get("refusal"), str):
        content = message["refusal"]  # a refusal is the model's answer; do not drop it
    return Completion(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        content=content,
        tool_calls=tool_calls,
        finish_reason=settle_finish_reason(choice.get("finish_reason"), bool(tool_calls)),
        usage=parse_usage(body.get("usage")),
    )


def settle_finish_reason(value: Any, has_tool_calls: bool) -> FinishReason:
    """`map_finish_reason`, plus: an answer that calls tools finished with `tool_calls`.

    OpenAI says `stop` when `tool_choice` forced a function, and some local servers
    always say `stop`; callers loop on `tool_calls`, so it is normalised here.
    """
    reason = map_finish_reason(value)
    return "tool_calls" if has_tool_calls and reason == "stop" else reason


def _tool_call_deltas(raw: Any) -> tuple[ToolCallDelta, ...]:
    if not isinstance(raw, list):
        return ()
    deltas = []
    for position, call in enumerate(raw):
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        if not isinstance(function, Mapping):
            function = {}
        index = call.get("index")
        deltas.append(
            ToolCallDelta(
                index=index if isinstance(index, int) else position,
                id=call.get("id") or None,
                name=function.get("name") or None,
                arguments=_arguments(function.get("arguments")),
            )
        )
    return tuple(deltas)


def parse_chunk(data: Mapping[str, Any], *, provider: str = "") -> Chunk | None:
    """One `chat.completion.chunk` → `Chunk`, or None when it carries nothing
    (the opening role-only delta, keep-alives). Usage comes from the final chunk
    (`choices: []`). An `{"error": ...}` object raises the matching `ProviderError`."""
    if data.get("error"):
        # OpenRouter sends mid-stream errors as a chunk with both `error` and `choices`.
        raise error_from_object(data["error"], provider=provider)
    usage = data.get("usage")
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    delta = choice.get("delta") if isinstance(choice, Mapping) else None
    if not isinstance(delta, Mapping):
        delta = {}
    content = _text(delta.get("content"))
    if not content and isinstance(delta.get("refusal"), str):
        content = delta["refusal"]
    raw_reason = choice.get("finish_reason") if isinstance(choice, Mapping) else None
    chunk = Chunk(
        content=content or None,
        tool_calls=_tool_call_deltas(delta.get("tool_calls")),
        finish_reason=None if raw_reason is None else map_finish_reason(raw_reason),
        usage=parse_usage(usage) if isinstance(usage, Mapping) else None,
    )
    if chunk.has_content or chunk.finish_reason is not None or chunk.usage is not None:
        return chunk
    return None


def _status_for_error(error: Mapping[str, Any]) -> int:
    # In-band errors have no HTTP status; OpenRouter puts one in `code`, others name a type.
    code = error.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    kind = f"{error.get('type') or ''} {code or ''}".lower()
    for marker, status in (
        ("rate_limit", 429),
        ("overloaded", 529),
        ("auth", 401),
        ("permission", 403),
        ("api_key", 401),
        ("not_found", 404),
        ("invalid_request", 400),
        ("context_length", 400),
    ):
        if marker in kind:
            return status
    return 500


def error_from_object(error: Any, *, provider: str = "") -> ProviderError:
    """The `ProviderError` for an error object sent inside a 200 body or an SSE stream."""
    if isinstance(error, Mapping):
        message = _text(error.get("message")) or excerpt(json.dumps(error, default=str))
        return error_for_status(_status_for_error(error), message, provider=provider)
    return error_for_status(500, excerpt(str(error)), provider=provider)


def error_message(body: bytes | str) -> str:
    """A readable message from an error response body, whatever its shape.

    Handles OpenAI's `{"error": {"message": ...}}`, `{"error": "text"}`,
    `{"detail": ...}` (FastAPI-based servers such as vLLM), `{"message": ...}` and
    plain text; anything else is quoted, cut to `EXCERPT_CHARS`.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not text.strip():
        return "empty response body"
    try:
        parsed = json.loads(text)
    except ValueError:
        return excerpt(text.strip())
    if isinstance(parsed, Mapping):
        for candidate in (parsed.get("error"), parsed.get("detail"), parsed.get("message")):
            if isinstance(candidate, Mapping) and isinstance(candidate.get("message"), str):
                return excerpt(candidate["message"], 2000)
            if isinstance(candidate, str) and candidate:
                return excerpt(candidate, 2000)
            if candidate:
                return excerpt(json.dumps(candidate, default=str))
    return excerpt(text.strip())


async def iter_sse_data(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """The `data` payload of each server-sent event in `lines`.

    Events are blank-line separated; multi-line data is joined with newlines as the
    SSE spec says; comments (`:`) and other fields (`event:`, `id:`) are ignored.
    """
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)
