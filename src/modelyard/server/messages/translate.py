"""An Anthropic Messages request → the internal `ChatRequest` (OpenAI's shape).

The conversation is checked first, as Anthropic checks it: at least one message,
the first turn from the user, no empty turn but a final assistant prefill, every
`tool_result` answering a `tool_use` of the assistant turn just before it, and every
`tool_use` answered in the next user turn. Consecutive turns of one role are merged,
as Anthropic merges them. Each failure is an `InvalidRequestError` naming the message.

Mapping: `system` → a system message; a user turn's `tool_result` blocks → `tool`
messages (first, in order) and its other blocks → one user message; an assistant
turn's text → its content and its `tool_use` blocks → `tool_calls`; images → image
parts (base64 as a data URL); `tool_choice` auto/any/tool/none → auto/required/the
named function/none, `disable_parallel_tool_use` → `parallel_tool_calls: false`;
`stop_sequences` → `stop`; `metadata.user_id` → `user`; `output_config.format` → a
`json_schema` response format. Thinking blocks of earlier turns are dropped (Anthropic
itself ignores earlier turns' thinking); a `tool_result` with `is_error` keeps that
fact as a leading `[tool error]` in its text, since OpenAI's tool messages have no flag.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from modelyard.errors import InvalidRequestError
from modelyard.server.messages.schema import (
    CountTokensRequest,
    ImageBlock,
    InputMessage,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
    UrlSource,
)
from modelyard.types import (
    ChatRequest,
    ContentPart,
    FunctionCall,
    FunctionDef,
    ImagePart,
    ImageUrl,
    JsonSchemaSpec,
    Message,
    NamedFunction,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)

TOOL_ERROR_PREFIX = "[tool error] "
STRUCTURED_OUTPUT_NAME = "structured_output"


@dataclass
class _Turn:
    """Consecutive messages of one role, merged; `first` is the index of the first."""

    role: str
    first: int
    blocks: list[Any] = field(default_factory=list)


def to_chat_request(body: CountTokensRequest, *, max_tokens: int | None = None) -> ChatRequest:
    """The `ChatRequest` for a checked Anthropic body (`MessagesRequest` for a call;
    a `CountTokensRequest` is translated with `max_tokens` for counting only)."""
    system, turns = _turns(body.messages)
    check_conversation(turns)
    messages = [*_system(body, system), *(m for t in turns for m in _translate(t))]
    fields: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "modelyard": body.modelyard,
        "max_tokens": max_tokens,
    }
    fields.update(_tools(body))
    if body.output_config is not None and body.output_config.format is not None:
        spec = JsonSchemaSpec(name=STRUCTURED_OUTPUT_NAME, schema=body.output_config.format.schema_)
        fields["response_format"] = ResponseFormat(type="json_schema", json_schema=spec)
    if isinstance(body, MessagesRequest):
        fields.update(
            max_tokens=body.max_tokens,
            stream=body.stream,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=body.stop_sequences or None,
            user=body.metadata.user_id if body.metadata else None,
        )
    try:
        return ChatRequest(**fields)
    except ValidationError as exc:  # a gap between the two schemas: still the caller's 400
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidRequestError(f"{where}: {err['msg']}", param=where) from None


def _turns(messages: Sequence[InputMessage]) -> tuple[list[str], list[_Turn]]:
    """System texts found among the messages, and the user/assistant turns, merged."""
    if not messages:
        raise InvalidRequestError("messages: at least one message is required", param="messages")
    system: list[str] = []
    turns: list[_Turn] = []
    for i, message in enumerate(messages):
        content = message.content
        blocks = [TextBlock(type="text", text=content)] if isinstance(content, str) else content
        if message.role == "system":
            system.extend(_system_texts(blocks, i))
            continue
        prefill = message.role == "assistant" and i == len(messages) - 1
        if not any(_says_something(b) for b in blocks) and not prefill:
            raise InvalidRequestError(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message",
                param=f"messages.{i}",
            )
        if turns and turns[-1].role == message.role:
            turns[-1].blocks.extend(blocks)
        else:
            turns.append(_Turn(message.role, i, list(blocks)))
    return system, turns


def _says_something(block: Any) -> bool:
    if isinstance(block, ThinkingBlock | RedactedThinkingBlock):
        return False  # dropped before anything is sent
    return not isinstance(block, TextBlock) or bool(block.text)


def _system_texts(blocks: Sequence[Any], i: int) -> list[str]:
    if not all(isinstance(b, TextBlock) for b in blocks):
        raise InvalidRequestError(
            f"messages.{i}: system messages may only contain text blocks",
            param=f"messages.{i}.content",
        )
    return [b.text for b in blocks if b.text]


def check_conversation(turns: Sequence[_Turn]) -> None:
    """Anthropic's turn rules (see the module docstring); raises `InvalidRequestError`."""
    if not turns:
        raise InvalidRequestError(
            "messages: at least one user message is required", param="messages"
        )
    if turns[0].role != "user":
        raise InvalidRequestError(
            'messages.0: the first message must use the "user" role', param="messages.0.role"
        )
    for previous, turn in itertools.pairwise(turns):
        if previous.role == "assistant":
            _check_answered(previous, turn)
    for at, turn in enumerate(turns):
        asked = turns[at - 1] if at and turns[at - 1].role == "assistant" else None
        _check_results(turn, asked)
    if turns[-1].role == "assistant" and _tool_use_ids(turns[-1]):
        _check_answered(turns[-1], None)


def _tool_use_ids(turn: _Turn) -> list[str]:
    return [b.id for b in turn.blocks if isinstance(b, ToolUseBlock)]


def _check_answered(asked: _Turn, reply: _Turn | None) -> None:
    results = reply.blocks if reply is not None else []
    answered = {b.tool_use_id for b in results if isinstance(b, ToolResultBlock)}
    missing = [i for i in _tool_use_ids(asked) if i not in answered]
    if missing:
        where = f"messages.{reply.first if reply else asked.first}"
        raise InvalidRequestError(
            f"{where}: `tool_use` ids were found without `tool_result` blocks immediately "
            f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
            "`tool_result` block in the next message.",
            param=where,
        )


def _check_results(turn: _Turn, asked: _Turn | None) -> None:
    offered = set(_tool_use_ids(asked)) if asked is not None else set()
    for block in turn.blocks:
        if isinstance(block, ThinkingBlock | RedactedThinkingBlock) and turn.role == "user":
            raise InvalidRequestError(
                f"messages.{turn.first}: thinking blocks may only appear in assistant turns",
                param=f"messages.{turn.first}",
            )
        if isinstance(block, ToolUseBlock) and turn.role == "user":
            raise InvalidRequestError(
                f"messages.{turn.first}: `tool_use` blocks may only appear in assistant turns",
                param=f"messages.{turn.first}",
            )
        if isinstance(block, ToolResultBlock) and (
            turn.role != "user" or block.tool_use_id not in offered
        ):
            raise InvalidRequestError(
                f"messages.{turn.first}: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {block.tool_use_id}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message.",
                param=f"messages.{turn.first}",
            )


def _system(body: CountTokensRequest, inline: list[str]) -> list[Message]:
    texts: list[str] = []
    if isinstance(body.system, str):
        texts.append(body.system)
    elif body.system:
        texts.extend(b.text for b in body.system)
    texts.extend(inline)
    text = "\n\n".join(t for t in texts if t)
    return [Message(role="system", content=text)] if text else []


def _translate(turn: _Turn) -> list[Message]:
    if turn.role == "assistant":
        message = _assistant(turn.blocks)
        # An empty final prefill says nothing; an empty assistant message is refused
        # by some OpenAI-compatible servers.
        return [message] if message.content or message.tool_calls else []
    tools = [_tool_message(b) for b in turn.blocks if isinstance(b, ToolResultBlock)]
    parts = [_part(b) for b in turn.blocks if isinstance(b, TextBlock | ImageBlock)]
    parts = [p for p in parts if not isinstance(p, TextPart) or p.text]
    if not parts:
        return tools
    content: str | list[ContentPart] = (
        parts[0].text if len(parts) == 1 and isinstance(parts[0], TextPart) else list(parts)
    )
    return [*tools, Message(role="user", content=content)]


def _assistant(blocks: Sequence[Any]) -> Message:
    # Thinking and redacted_thinking blocks are dropped: they are only meaningful, and
    # verifiable, to the Anthropic model that wrote them.
    if any(isinstance(b, ImageBlock) for b in blocks):
        raise InvalidRequestError(
            "messages: image blocks may only appear in user turns", param="messages"
        )
    text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
    calls = [
        ToolCall(id=b.id, function=FunctionCall(name=b.name, arguments=json.dumps(b.input)))
        for b in blocks
        if isinstance(b, ToolUseBlock)
    ]
    return Message(role="assistant", content=text or None, tool_calls=calls or None)


def _tool_message(block: ToolResultBlock) -> Message:
    content: str | list[ContentPart]
    if block.content is None or isinstance(block.content, str):
        content = block.content or ""
        if block.is_error:
            content = TOOL_ERROR_PREFIX + content
    else:
        content = [_part(b) for b in block.content]
        if block.is_error:
            content = [TextPart(type="text", text=TOOL_ERROR_PREFIX.strip()), *content]
    return Message(role="tool", tool_call_id=block.tool_use_id, content=content)


def _part(block: TextBlock | ImageBlock) -> ContentPart:
    if isinstance(block, TextBlock):
        return TextPart(type="text", text=block.text)
    source = block.source
    if isinstance(source, UrlSource):
        return ImagePart(type="image_url", image_url=ImageUrl(url=source.url))
    url = f"data:{source.media_type};base64,{source.data}"
    return ImagePart(type="image_url", image_url=ImageUrl(url=url))


def _tools(body: CountTokensRequest) -> dict[str, Any]:
    """`tools`, `tool_choice` and `parallel_tool_calls` for the ChatRequest."""
    if not body.tools:
        return {}  # a tool_choice without tools chooses nothing
    tools = [
        Tool(
            function=FunctionDef(name=t.name, description=t.description, parameters=t.input_schema)
        )
        for t in body.tools
    ]
    out: dict[str, Any] = {"tools": tools}
    choice = body.tool_choice
    if choice is None:
        return out
    mapped: ToolChoice
    if isinstance(choice, ToolChoiceNone):
        mapped = "none"
    elif isinstance(choice, ToolChoiceTool):
        if choice.name not in {t.name for t in body.tools}:
            raise InvalidRequestError(
                f"tool_choice.name: no tool named '{choice.name}' in tools",
                param="tool_choice.name",
            )
        mapped = NamedToolChoice(function=NamedFunction(name=choice.name))
    elif isinstance(choice, ToolChoiceAny):
        mapped = "required"
    else:
        mapped = "auto"
    out["tool_choice"] = mapped
    if not isinstance(choice, ToolChoiceNone) and choice.disable_parallel_tool_use:
        out["parallel_tool_calls"] = False
    return out
