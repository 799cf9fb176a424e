"""A finished answer (`Completion`) as an Anthropic `message` object.

The mappings are the inverse of the outbound adapter's (`anthropic_wire`): finish
reasons back to `stop_reason`, and usage back to Anthropic's convention, where
`input_tokens` excludes the prompt-cache reads and writes reported beside it.
"""

from __future__ import annotations

import json
from typing import Any, Final

from modelyard.errors import ProviderResponseError
from modelyard.types import Completion, FinishReason, ToolCall, Usage

# modelyard finish reason → Anthropic stop_reason (`stop` is refined by stop_sequence).
STOP_REASONS: Final[dict[FinishReason, str]] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def msg_id(upstream_id: str) -> str:
    """A `msg_` id; an upstream id that already has the prefix keeps it once."""
    return upstream_id if upstream_id.startswith("msg_") else f"msg_{upstream_id}"


def stop_reason(finish: FinishReason | None, stop_sequence: str | None, tools: bool) -> str:
    """Anthropic's `stop_reason` for a modelyard finish reason."""
    if stop_sequence is not None:
        return "stop_sequence"
    if tools and finish in (None, "stop", "tool_calls"):
        # Some OpenAI-compatible servers say `stop` after a tool call.
        return "tool_use"
    return STOP_REASONS.get(finish or "stop", "end_turn")


def usage_json(usage: Usage) -> dict[str, int]:
    """Anthropic's usage object: input without the cache reads and writes."""
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(0, uncached),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def tool_input(call: ToolCall, provider: str = "") -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `tool_use.input` must be."""
    try:
        value = json.loads(call.function.arguments or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ProviderResponseError(
            f"the model called tool '{call.function.name}' with arguments that are not a "
            "JSON object, which an Anthropic tool_use block cannot carry",
            provider=provider,
        )
    return value


def message_json(completion: Completion, *, model: str, message_id: str) -> dict[str, Any]:
    """The `message` object for a finished answer; `message_id` is the request's id (an
    upstream's own id need not be unique across the providers behind the gateway)."""
    content: list[dict[str, Any]] = []
    if completion.content:
        content.append({"type": "text", "text": completion.content})
    for call in completion.tool_calls:
        block = {"type": "tool_use", "id": call.id, "name": call.function.name}
        content.append({**block, "input": tool_input(call)})
    return {
        "id": msg_id(message_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(
            completion.finish_reason, completion.stop_sequence, bool(completion.tool_calls)
        ),
        "stop_sequence": completion.stop_sequence,
        "usage": usage_json(completion.usage),
    }
