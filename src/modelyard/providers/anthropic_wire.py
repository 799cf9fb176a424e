"""Anthropic Messages wire format: pure translations, no I/O.

modelyard speaks the OpenAI chat-completions shape internally; this module turns a
`ChatRequest` into a `POST /v1/messages` body and turns Anthropic's answer (a
`message` object) back into a `Completion`. The streaming answer is translated in
`anthropic_stream`, which shares this module's field, usage and finish-reason helpers.

Structured output uses the forced-tool technique, which works on every Claude
model that supports tools: a `json_schema` response format becomes an extra tool
named after the schema whose `input_schema` is the schema, `tool_choice` forces it,
and the tool's `input` comes back as the answer's text content with finish reason
`stop`. `json_object` mode has no schema to force, so it becomes a system
instruction to reply with a single JSON object (prefilling `{` is not used: newer
models reject assistant prefill).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from modelyard.errors import InvalidRequestError, ProviderResponseError
from modelyard.types import (
    ChatRequest,
    Completion,
    ContentPart,
    FinishReason,
    FunctionCall,
    ImagePart,
    JsonSchemaSpec,
    Message,
    NamedToolChoice,
    TextPart,
    ToolCall,
    Usage,
)

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires `max_tokens`; used when the caller set no output limit."""

JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no code fences."
)
_JSON_TOOL_DESCRIPTION = "Give your final answer as this tool's input, matching its schema."
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

FINISH_REASONS: dict[str, FinishReason] = {
    # Anthropic `stop_reason` -> modelyard finish reason (the front door maps back).
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    # The window filled up mid-answer: to the caller that is a truncation.
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_T = TypeVar("_T")


class MalformedError(ValueError):
    """An upstream body is not what Anthropic documents; becomes ProviderResponseError."""


def typed_field(obj: Mapping[str, Any], key: str, kind: type[_T]) -> _T:
    """`obj[key]` if it is a `kind`; raises `MalformedError` otherwise (also when absent)."""
    value = obj.get(key)
    # bool is an int subclass, but `true` is never a token count or an index.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedError(f"`{key}` is not a {kind.__name__}")
    return value


# --- Request ---


def json_schema_tool(request: ChatRequest) -> str | None:
    """The name of the forced answer tool when `request` asks for a JSON schema, else None."""
    spec = _json_schema_spec(request)
    return spec.name if spec is not None else None


def _json_schema_spec(request: ChatRequest) -> JsonSchemaSpec | None:
    fmt = request.response_format
    if fmt is None or fmt.type != "json_schema":
        return None
    if fmt.json_schema is None:
        raise InvalidRequestError(
            "response_format json_schema needs a json_schema object", param="response_format"
        )
    return fmt.json_schema


def build_body(request: ChatRequest, upstream_model: str, *, stream: bool) -> dict[str, Any]:
    """The Messages API body for `request`.

    System/developer messages are hoisted into top-level `system`; consecutive turns
    of one role are merged (Anthropic requires alternation); tool results travel in
    user turns. OpenAI passthrough extras are dropped because Anthropic rejects
    unknown fields. Raises `InvalidRequestError` for what Anthropic cannot express
    (audio input, unparseable tool-call arguments, unsupported image URLs).
    """
    system, messages = _translate_messages(request.messages)
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        system = f"{system}\n\n{JSON_OBJECT_INSTRUCTION}" if system else JSON_OBJECT_INSTRUCTION
    body: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": request.output_limit or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = system
    _add_sampling(body, request)
    _add_tools(body, request)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    body["stream"] = stream
    return body


def _translate_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            system_parts.append(_system_text(message, i))
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _message_blocks(message, i)
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty message says nothing anyway.
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Anthropic requires tool_result blocks before any other content in a user turn.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return "\n\n".join(part for part in system_parts if part), turns


def _system_text(message: Message, i: int) -> str:
    if isinstance(message.content, list) and not all(
        isinstance(p, TextPart) for p in message.content
    ):
        raise InvalidRequestError(
            f"messages[{i}]: {message.role} messages may only contain text for Anthropic",
            param=f"messages[{i}].content",
        )
    return message.text()


def _message_blocks(message: Message, i: int) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [_tool_result(message, i)]
    blocks = _content_blocks(message.content, i)
    if message.role == "assistant":
        blocks.extend(_tool_use(call, i) for call in message.tool_calls or ())
    return blocks


def _content_blocks(content: str | list[ContentPart] | None, i: int) -> list[dict[str, Any]]:
    if not content:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            if part.text:  # Anthropic rejects empty text blocks.
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part.image_url.url, i))
        else:
            raise InvalidRequestError(
                f"messages[{i}]: the Anthropic Messages API does not accept audio input "
                "(input_audio content parts); route this request to an audio-capable model",
                param=f"messages[{i}].content",
            )
    return blocks


def _image_block(url: str, i: int) -> dict[str, Any]:
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if url.startswith("data:"):
        header, sep, data = url[len("data:") :].partition(",")
        media_type, *params = header.split(";")
        media_type = media_type.strip().lower().replace("image/jpg", "image/jpeg")
        if sep and "base64" in params and media_type in IMAGE_MEDIA_TYPES:
            source = {"type": "base64", "media_type": media_type, "data": data}
            return {"type": "image", "source": source}
    raise InvalidRequestError(
        f"messages[{i}]: Anthropic takes images as http(s) URLs or base64 data URLs of "
        f"type {', '.join(sorted(IMAGE_MEDIA_TYPES))}",
        param=f"messages[{i}].content",
    )


def _tool_use(call: ToolCall, i: int) -> dict[str, Any]:
    try:
        # Some clients send "" for a call without arguments.
        arguments = json.loads(call.function.arguments or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequestError(
            f"messages[{i}]: tool call {call.id!r} has arguments that are not a JSON object",
            param=f"messages[{i}].tool_calls",
        )
    return {"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments}


def _tool_result(message: Message, i: int) -> dict[str, Any]:
    if not message.tool_call_id:
        raise InvalidRequestError(
            f"messages[{i}]: tool messages need a tool_call_id", param=f"messages[{i}]"
        )
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content: str | list[dict[str, Any]] = (
        message.content if isinstance(message.content, str) else _content_blocks(message.content, i)
    )
    if content:  # `content` is optional; an empty one is rejected.
        block["content"] = content
    return block


def _add_sampling(body: dict[str, Any], request: ChatRequest) -> None:
    if request.temperature is not None:
        # OpenAI's range is 0..2, Anthropic's 0..1: clamp instead of failing a request
        # that any OpenAI-compatible upstream would accept.
        body["temperature"] = min(request.temperature, 1.0)
    elif request.top_p is not None:
        # Current Claude models reject `temperature` and `top_p` together ("use only
        # one"), so top_p is sent only when temperature is not.
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop


def _add_tools(body: dict[str, Any], request: ChatRequest) -> None:
    tools = [
        _tool_def(t.function.name, t.function.description, t.function.parameters)
        for t in request.tools or ()
    ]
    spec = _json_schema_spec(request)
    if spec is not None:
        if any(t["name"] == spec.name for t in tools):
            raise InvalidRequestError(
                f"response_format json_schema name {spec.name!r} clashes with a tool name",
                param="response_format",
            )
        tools.append(_tool_def(spec.name, spec.description or _JSON_TOOL_DESCRIPTION, spec.schema_))
    if not tools:
        return
    body["tools"] = tools
    choice = _tool_choice(request, spec.name if spec is not None else None)
    if choice is not None:
        body["tool_choice"] = choice


def _tool_def(name: str, description: str | None, schema: dict[str, Any] | None) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name}
    if description:
        tool["description"] = description
    tool["input_schema"] = schema or dict(_EMPTY_SCHEMA)
    return tool


def _tool_choice(request: ChatRequest, json_tool: str | None) -> dict[str, Any] | None:
    choice = request.tool_choice
    result: dict[str, Any]
    if isinstance(choice, NamedToolChoice):
        result = {"type": "tool", "name": choice.function.name}
    elif json_tool is not None:
        if not request.tools or choice == "none":
            # Only one answer is wanted, so only one call of the answer tool.
            return {"type": "tool", "name": json_tool, "disable_parallel_tool_use": True}
        # The caller's tools stay usable: the model must call *some* tool, and the
        # answer tool is how it answers.
        result = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}  # takes no disable_parallel_tool_use
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "auto" or request.parallel_tool_calls is False:
        result = {"type": "auto"}
    else:
        return None
    if request.parallel_tool_calls is False:
        result["disable_parallel_tool_use"] = True
    return result


# --- Response ---


def parse_message(body: object, *, json_tool: str | None = None, provider: str = "") -> Completion:
    """Translate an Anthropic `message` object into a `Completion`.

    Text blocks are concatenated; `tool_use` blocks become tool calls, except the
    first call of `json_tool` (the forced structured-output tool), whose input is
    the answer's content. Raises `ProviderResponseError` for a body that is not a
    documented message.
    """
    try:
        return _parse_message(body, json_tool)
    except MalformedError as exc:
        raise response_error(provider, f"malformed Anthropic message: {exc}") from exc


def _parse_message(body: object, json_tool: str | None) -> Completion:
    if not isinstance(body, dict):
        raise MalformedError("body is not a JSON object")
    blocks = typed_field(body, "content", list)
    texts: list[str] = []
    calls: list[ToolCall] = []
    answered = False
    for block in blocks:
        if not isinstance(block, dict):
            raise MalformedError("a content block is not an object")
        if block.get("type") == "text":
            texts.append(typed_field(block, "text", str))
        elif block.get("type") == "tool_use":
            name, arguments = typed_field(block, "name", str), _dumps(block.get("input"))
            if name == json_tool:
                if not answered:
                    texts.append(arguments)
                answered = True
            else:
                function = FunctionCall(name=name, arguments=arguments)
                calls.append(ToolCall(id=typed_field(block, "id", str), function=function))
        # thinking, server-tool and future block types carry nothing the caller asked for.
    usage = typed_field(body, "usage", dict)
    return Completion(
        id=typed_field(body, "id", str),
        model=typed_field(body, "model", str),
        content="".join(texts) if texts or not calls else None,
        tool_calls=tuple(calls),
        finish_reason=finish_reason_from(body.get("stop_reason"), bool(calls)),
        usage=usage_from(usage),
        stop_sequence=stop_sequence_from(body),
    )


def finish_reason_from(stop_reason: object, has_tool_calls: bool) -> FinishReason:
    """modelyard's finish reason for an Anthropic `stop_reason` (unknown ones: `stop`)."""
    if stop_reason == "tool_use" and not has_tool_calls:
        return "stop"  # only the structured-output tool was called: that is the answer
    if isinstance(stop_reason, str):
        return FINISH_REASONS.get(stop_reason, "stop")
    return "stop"


def stop_sequence_from(obj: Mapping[str, Any]) -> str | None:
    """The matched stop sequence of a message or `message_delta`'s delta, if any."""
    value = obj.get("stop_sequence")
    return value if isinstance(value, str) else None


def usage_from(start: Mapping[str, Any], final: Mapping[str, Any] | None = None) -> Usage:
    """modelyard usage from Anthropic's; `final` (message_delta, cumulative) wins per field.

    Anthropic's `input_tokens` excludes cache reads and writes; modelyard's includes them.
    """

    def count(key: str) -> int:
        value = final.get(key) if final is not None else None
        value = start.get(key) if value is None else value
        if value is None:
            return 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise MalformedError(f"usage.{key} is not an integer")
        return value

    cache_read = count("cache_read_input_tokens")
    cache_write = count("cache_creation_input_tokens")
    return Usage(
        input_tokens=count("input_tokens") + cache_read + cache_write,
        output_tokens=count("output_tokens"),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _dumps(tool_input: object) -> str:
    if not isinstance(tool_input, dict):
        raise MalformedError("tool_use `input` is not an object")
    return json.dumps(tool_input, ensure_ascii=False)


def response_error(provider: str, message: str) -> ProviderResponseError:
    """The `ProviderResponseError` for an upstream answer that breaks the documented shape."""
    return ProviderResponseError(
        f"{provider}: {message}" if provider else message, provider=provider
    )


# --- Errors ---

# The HTTP status Anthropic documents for each error type: an `error` event that arrives
# mid-stream (after a 200) is classified like the same error as a status, and the
# `/v1/messages` front door answers with these pairs.
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_message(body: object) -> tuple[str, str | None]:
    """The message and Anthropic error type in an error body.

    Documented shape: `{"type": "error", "error": {"type": ..., "message": ...}}`.
    Anything else (a proxy's HTML page, an empty body) yields a trimmed text and None.
    """
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message, kind = error.get("message"), error.get("type")
            return (
                message if isinstance(message, str) else "",
                kind if isinstance(kind, str) else None,
            )
        return "", None
    if isinstance(body, str | bytes):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text.strip()[:500], None
    return "", None
