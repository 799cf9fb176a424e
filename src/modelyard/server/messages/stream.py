"""modelyard's internal stream (`Chunk`s) as Anthropic's SSE event sequence.

    message_start → (content_block_start → ping (once, after the first) →
    content_block_delta… → content_block_stop)… → message_delta → message_stop

Text becomes a `text` block with `text_delta`s; each tool call a `tool_use` block
(opened with `input: {}`) with `input_json_delta`s carrying the arguments as they
stream. A new block opens when the kind changes or a new tool call starts, after
the open one is stopped; blocks are numbered 0, 1, … in order, as the SDKs'
accumulators require. `message_start` carries the routed request's prompt estimate
as `input_tokens`; `message_delta` carries the provider's reported usage
(cumulative, so it overwrites the estimate in the SDKs) and the stop reason, plus
a `modelyard.cost_usd` field with what the request cost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from modelyard.server.messages.render import msg_id, stop_reason, usage_json
from modelyard.types import Chunk, FinishReason, ToolCallDelta, Usage, money_text


def sse(kind: str, data: dict[str, Any]) -> str:
    """One server-sent event, named as Anthropic names them (`event:` = `data.type`)."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class EventRenderer:
    """Renders one answer's chunks as Anthropic stream events (see the module docstring)."""

    def __init__(self, *, request_id: str, model: str, input_tokens: int) -> None:
        self.message_id = msg_id(request_id)
        self.model = model
        self.input_tokens = input_tokens
        self._next_index = 0
        self._open: tuple[int, str] | None = None  # (block index, "text" | "tool")
        self._tool_blocks: dict[int, int] = {}  # tool call ordinal → block index
        self._pinged = False
        self._finish: FinishReason | None = None
        self._stop_sequence: str | None = None
        self._usage: Usage | None = None
        self._cost: Decimal | None = None

    def start(self) -> str:
        """`message_start`: the message shell, empty, with the prompt estimate."""
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_json(Usage(input_tokens=self.input_tokens)),
        }
        return sse("message_start", {"type": "message_start", "message": message})

    def events(self, chunk: Chunk, cost_usd: Decimal | None = None) -> Iterator[str]:
        """The events for one chunk; its finish reason and usage wait for `end`."""
        if chunk.content:
            if self._open is None or self._open[1] != "text":
                yield from self._open_block("text", {"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": chunk.content}
            yield self._delta(self._current(), delta)
        for call in chunk.tool_calls:
            yield from self._tool(call)
        if chunk.finish_reason is not None:
            self._finish = chunk.finish_reason
        if chunk.stop_sequence is not None:
            self._stop_sequence = chunk.stop_sequence
        if chunk.usage is not None:
            self._usage = chunk.usage
            self._cost = cost_usd

    def end(self) -> Iterator[str]:
        """Close the open block, then `message_delta` and `message_stop`."""
        yield from self._close()
        if not self._pinged:
            yield self._ping()
        usage = usage_json(self._usage or Usage(input_tokens=self.input_tokens))
        reason = stop_reason(self._finish, self._stop_sequence, bool(self._tool_blocks))
        data: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": self._stop_sequence},
            "usage": usage,
        }
        if self._cost is not None:
            data["modelyard"] = {"cost_usd": money_text(self._cost)}
        yield sse("message_delta", data)
        yield sse("message_stop", {"type": "message_stop"})

    def _tool(self, call: ToolCallDelta) -> Iterator[str]:
        index = self._tool_blocks.get(call.index)
        if index is None:
            block = {
                "type": "tool_use",
                # OpenAI-compatible servers always name the call; a missing id is made
                # up so that the client can still answer it with a tool_result.
                "id": call.id or f"toolu_{self.message_id.removeprefix('msg_')}_{call.index}",
                "name": call.name or "",
                "input": {},
            }
            yield from self._open_block("tool", block)
            index = self._tool_blocks[call.index] = self._current()
        if call.arguments:
            yield self._delta(index, {"type": "input_json_delta", "partial_json": call.arguments})

    def _open_block(self, kind: str, block: dict[str, Any]) -> Iterator[str]:
        yield from self._close()
        index = self._next_index
        self._next_index += 1
        self._open = (index, kind)
        data = {"type": "content_block_start", "index": index, "content_block": block}
        yield sse("content_block_start", data)
        if not self._pinged:
            yield self._ping()

    def _close(self) -> Iterator[str]:
        if self._open is not None:
            index, _ = self._open
            self._open = None
            yield sse("content_block_stop", {"type": "content_block_stop", "index": index})

    def _current(self) -> int:
        assert self._open is not None  # a block was just opened
        return self._open[0]

    def _ping(self) -> str:
        self._pinged = True
        return sse("ping", {"type": "ping"})

    @staticmethod
    def _delta(index: int, delta: dict[str, Any]) -> str:
        data = {"type": "content_block_delta", "index": index, "delta": delta}
        return sse("content_block_delta", data)
