"""Anthropic Messages streaming: server-sent events to modelyard `Chunk`s, no I/O.

A streamed Messages answer is a sequence of SSE events: `message_start` (the message
shell and the input-side usage), then for each content block `content_block_start`,
any number of `content_block_delta`s (`text_delta` for text, `input_json_delta` for a
tool's input as partial JSON) and `content_block_stop`; then `message_delta` (the
stop reason and cumulative usage) and finally `message_stop`. `ping` events may
arrive anywhere, and an `error` event can replace the rest of the stream even after
a 200. `StreamTranslator` turns that sequence, one event at a time, into the
OpenAI-shaped `Chunk`s modelyard streams internally; field checks, usage and
finish-reason mapping are shared with the whole-message translation in
`anthropic_wire`.
"""

from __future__ import annotations

import json
from typing import Any

from modelyard.errors import ProviderError
from modelyard.providers.anthropic_wire import (
    ERROR_STATUS,
    MalformedError,
    error_message,
    finish_reason_from,
    response_error,
    stop_sequence_from,
    typed_field,
    usage_from,
)
from modelyard.providers.http import error_for_status
from modelyard.types import Chunk, ToolCallDelta


class StreamTranslator:
    """Turns Anthropic's stream events, one at a time, into `Chunk`s.

    Feed every SSE event in order; `feed` returns a chunk or None (`ping`,
    `content_block_stop`, thinking blocks and event types added later yield nothing).
    Tool calls are numbered by their ordinal among the stream's `tool_use` blocks,
    the OpenAI streaming convention. `json_tool`'s input is streamed as content.
    An `error` event raises the mapped `ProviderError`; `finished` turns True on
    `message_stop`, and a stream that ends before that was truncated.
    """

    def __init__(self, *, json_tool: str | None = None, provider: str = "") -> None:
        self._json_tool = json_tool
        self._provider = provider
        self._blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, tool ordinal)
        self._tool_count = 0
        self._answered = False
        self._start_usage: dict[str, Any] = {}
        self._finished = False

    @property
    def finished(self) -> bool:
        """Whether `message_stop` has been seen."""
        return self._finished

    def feed(self, event: str | None, data: str) -> Chunk | None:
        """Translate one event (`event:` name, raw `data:` JSON); raises on `error` events."""
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise response_error(self._provider, f"stream event {event!r} is not a JSON object")
        try:
            return self._dispatch(payload.get("type") or event, payload)
        except MalformedError as exc:
            raise response_error(self._provider, f"malformed stream event: {exc}") from exc

    def _dispatch(self, kind: object, payload: dict[str, Any]) -> Chunk | None:
        match kind:
            case "message_start":
                self._start_usage = typed_field(
                    typed_field(payload, "message", dict), "usage", dict
                )
                return None
            case "content_block_start":
                return self._block_start(
                    typed_field(payload, "index", int), typed_field(payload, "content_block", dict)
                )
            case "content_block_delta":
                return self._block_delta(
                    typed_field(payload, "index", int), typed_field(payload, "delta", dict)
                )
            case "message_delta":
                delta = typed_field(payload, "delta", dict)
                reason = delta.get("stop_reason")
                return Chunk(
                    finish_reason=finish_reason_from(reason, self._tool_count > 0),
                    usage=usage_from(self._start_usage, typed_field(payload, "usage", dict)),
                    stop_sequence=stop_sequence_from(delta),
                )
            case "message_stop":
                self._finished = True
                return None
            case "error":
                raise stream_error(payload, self._provider)
            case _:
                return None

    def _block_start(self, index: int, block: dict[str, Any]) -> Chunk | None:
        if block.get("type") == "text":
            self._blocks[index] = ("text", 0)
            text = block.get("text")
            return Chunk(content=text) if isinstance(text, str) and text else None
        if block.get("type") != "tool_use":
            return None
        name = typed_field(block, "name", str)
        if name == self._json_tool:
            if not self._answered:  # a second answer would corrupt the first's JSON
                self._blocks[index] = ("answer", 0)
            self._answered = True
            return None
        ordinal = self._tool_count
        self._tool_count += 1
        self._blocks[index] = ("tool", ordinal)
        delta = ToolCallDelta(
            index=ordinal, id=typed_field(block, "id", str), name=name, arguments=""
        )
        return Chunk(tool_calls=(delta,))

    def _block_delta(self, index: int, delta: dict[str, Any]) -> Chunk | None:
        kind, ordinal = self._blocks.get(index, ("ignored", 0))
        if kind == "text" and delta.get("type") == "text_delta":
            text = typed_field(delta, "text", str)
            return Chunk(content=text) if text else None
        if kind in ("tool", "answer") and delta.get("type") == "input_json_delta":
            piece = typed_field(delta, "partial_json", str)
            if not piece:
                return None  # Anthropic opens each tool input with an empty delta
            if kind == "answer":
                return Chunk(content=piece)
            return Chunk(tool_calls=(ToolCallDelta(index=ordinal, arguments=piece),))
        return None


def stream_error(body: object, provider: str) -> ProviderError:
    """The `ProviderError` for an `error` event received mid-stream (after a 200)."""
    message, kind = error_message(body)
    status = ERROR_STATUS.get(kind or "", 500)  # unknown types: an upstream fault
    return error_for_status(
        status,
        message or f"stream error {kind or 'without a type'}",
        provider=provider,
        overloaded=kind == "overloaded_error",
    )
