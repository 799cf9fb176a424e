"""The fake's Anthropic side: `POST /v1/messages`, JSON or the documented SSE events.

Answers with a `tool_use` block for the forced (or else the first) tool when
`tools` are given and `tool_choice` is not `none`; with a JSON object when the
system prompt asks for one; otherwise with `"echo: <last user text>"`. Bodies
are the anthropic SDK's own types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from anthropic.types import (
    InputJSONDelta,
    Message,
    MessageDeltaUsage,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlock,
    TextDelta,
    ToolUseBlock,
    Usage,
)
from anthropic.types.raw_message_delta_event import Delta
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response, StreamingResponse

from modelyard.testing.wire import (
    after_tool,
    count_tokens,
    echo,
    example_from_schema,
    request_problem,
    split_text,
    text_of,
)

if TYPE_CHECKING:
    from modelyard.testing.upstream import FakeUpstream, RecordedRequest

MESSAGE_ID = "msg_fake0001"
TOOL_USE_ID = "toolu_fake0001"


def error_body(type_: str, message: str) -> dict[str, Any]:
    """Anthropic's error envelope."""
    return {"type": "error", "error": {"type": type_, "message": message}}


# The error type Anthropic documents for each status (others: api_error).
_STATUS_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def status_error_body(
    status: int, message: str | None = None, type_: str | None = None
) -> dict[str, Any]:
    """The error body Anthropic sends with HTTP `status` (with its `request_id`);
    `type_` overrides the documented type."""
    kind = type_ or _STATUS_TYPES.get(status, "api_error")
    text = message or ("Overloaded" if kind == "overloaded_error" else f"Upstream error {status}.")
    return {**error_body(kind, text), "request_id": "req_fake0001"}


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        text = text_of(message["content"]) if message["role"] == "user" else ""
        if text:
            return text
    return ""


def _tool_result(messages: list[Any]) -> str | None:
    """The text of the last turn's tool_result, when the last turn carries one."""
    content = messages[-1]["content"] if messages else None
    if not isinstance(content, list):
        return None
    results = [b for b in content if b.get("type") == "tool_result"]
    return text_of(results[-1].get("content", "")) if results else None


def plan_block(body: Mapping[str, Any]) -> TextBlock | ToolUseBlock:
    """The one content block the fake answers a (valid) Messages request with."""
    tools = [t for t in body.get("tools") or [] if "input_schema" in t]
    choice = body.get("tool_choice") or {"type": "auto"}
    result = _tool_result(body["messages"])
    if tools and choice["type"] != "none" and not (result is not None and choice["type"] == "auto"):
        forced = choice.get("name") if choice["type"] == "tool" else None
        tool = next((t for t in tools if t["name"] == forced), tools[0])
        args = example_from_schema(tool["input_schema"])
        return ToolUseBlock(type="tool_use", id=TOOL_USE_ID, name=tool["name"], input=args)
    if result is not None:
        return TextBlock(type="text", text=after_tool(result))
    last = _last_user_text(body["messages"])
    if "JSON object" in text_of(body.get("system")):
        return TextBlock(type="text", text=json.dumps({"echo": last}))
    return TextBlock(type="text", text=echo(last))


def _usage(body: Mapping[str, Any], block: TextBlock | ToolUseBlock, cached: int) -> Usage:
    # Anthropic's `input_tokens` excludes cache reads, which are reported apart.
    prompt = count_tokens(body.get("messages")) + count_tokens(body.get("system") or "")
    prompt += count_tokens(body.get("tools") or "")
    output = count_tokens(block.text if isinstance(block, TextBlock) else block.input)
    read = min(cached, prompt)
    return Usage(
        input_tokens=prompt - read,
        output_tokens=output,
        cache_read_input_tokens=read,
        cache_creation_input_tokens=0,
    )


def message(body: Mapping[str, Any], block: TextBlock | ToolUseBlock, usage: Usage) -> Message:
    """The whole `message` object for a non-streamed answer."""
    return Message(
        id=MESSAGE_ID,
        type="message",
        role="assistant",
        model=str(body["model"]),
        content=[block],
        stop_reason="tool_use" if isinstance(block, ToolUseBlock) else "end_turn",
        stop_sequence=None,
        usage=usage,
    )


def events(
    body: Mapping[str, Any], block: TextBlock | ToolUseBlock, usage: Usage
) -> Iterator[BaseModel | dict[str, Any]]:
    """The documented event sequence: message_start, content_block_start, ping,
    content_block_delta..., content_block_stop, message_delta, message_stop."""
    start_usage = usage.model_copy(update={"output_tokens": 1})
    start = message(body, block, start_usage).model_copy(
        update={"content": [], "stop_reason": None}
    )
    yield RawMessageStartEvent(type="message_start", message=start)
    if isinstance(block, ToolUseBlock):
        opening: TextBlock | ToolUseBlock = block.model_copy(update={"input": {}})
        pieces = ["", *split_text(json.dumps(block.input))]
        deltas: list[TextDelta | InputJSONDelta] = [
            InputJSONDelta(type="input_json_delta", partial_json=p) for p in pieces
        ]
    else:
        opening = TextBlock(type="text", text="")
        deltas = [TextDelta(type="text_delta", text=p) for p in split_text(block.text)]
    yield RawContentBlockStartEvent(type="content_block_start", index=0, content_block=opening)
    yield {"type": "ping"}  # not in the SDK's event union; its reader skips pings by name
    for delta in deltas:
        yield RawContentBlockDeltaEvent(type="content_block_delta", index=0, delta=delta)
    yield RawContentBlockStopEvent(type="content_block_stop", index=0)
    final = message(body, block, usage)
    yield RawMessageDeltaEvent(
        type="message_delta",
        delta=Delta(stop_reason=final.stop_reason, stop_sequence=None),
        usage=MessageDeltaUsage(output_tokens=usage.output_tokens),
    )
    yield RawMessageStopEvent(type="message_stop")


def _sse(stream: Iterator[BaseModel | dict[str, Any]]) -> Iterator[str]:
    for event in stream:
        data = (
            event if isinstance(event, dict) else event.model_dump(mode="json", exclude_unset=True)
        )
        yield f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"


def _header_error(headers: Headers, key: str | None) -> Response | None:
    # `x-api-key` is the documented scheme; newer SDKs send the key as a Bearer token.
    given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
    if key is not None and given != key:
        error = error_body("authentication_error", "invalid x-api-key")
        return JSONResponse(error, status_code=401)
    if not headers.get("anthropic-version"):
        error = error_body("invalid_request_error", "anthropic-version: header is required")
        return JSONResponse(error, status_code=400)
    return None


def respond(state: FakeUpstream, headers: Headers, body: Any, record: RecordedRequest) -> Response:
    """Answer one Messages request as Anthropic would."""
    if (denied := _header_error(headers, state.anthropic_key)) is not None:
        return denied
    if (problem := request_problem("anthropic", body)) is not None:
        return JSONResponse(error_body("invalid_request_error", problem), status_code=400)
    block = plan_block(body)
    usage = _usage(body, block, state.cached_tokens)
    record.usage = usage.model_dump(mode="json", exclude_none=True)
    if body.get("stream"):
        return StreamingResponse(_sse(events(body, block, usage)), media_type="text/event-stream")
    return JSONResponse(message(body, block, usage).model_dump(mode="json", exclude_unset=True))
