"""A cached answer: what is stored (plain JSON, validated when read back, never
unpickled), and how it turns back into a completion or a stream."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.types import (
    Chunk,
    Completion,
    FinishReason,
    FunctionCall,
    ToolCall,
    ToolCallDelta,
    Usage,
)

# Only answers that ended normally are kept: a `content_filter` stop is left to the
# provider to decide again.
STORED_FINISH: frozenset[str] = frozenset({"stop", "length", "tool_calls"})


class CorruptEntryError(ValueError):
    """A stored value that is not a cached answer this version can read."""


class _Stored(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoredUsage(_Stored):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)


class CachedAnswer(_Stored):
    """One answer in the cache, with who gave it and what it cost when it was bought.

    `cost_usd` is the original request's billed cost: what each hit saves."""

    v: Literal[1] = 1
    model_id: str
    policy: str
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: Literal["stop", "length", "tool_calls"]
    usage: StoredUsage
    cost_usd: Decimal = Field(ge=0, allow_inf_nan=False)
    confidence: float | None = None
    stored_at: datetime
    request_id: str
    decision_id: str

    def encode(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def decode(cls, raw: bytes | str) -> CachedAnswer:
        """The stored answer, or `CorruptEntryError` for anything else."""
        try:
            return cls.model_validate_json(raw)
        except (ValidationError, ValueError) as exc:
            raise CorruptEntryError(f"unreadable cache entry ({exc.__class__.__name__})") from None

    def served_usage(self) -> Usage:
        """The answer's token counts, priced at 0: a hit costs nothing."""
        u = self.usage
        return Usage(u.input_tokens, u.output_tokens, u.cached_input_tokens, cost_usd=Decimal(0))

    def completion(self, completion_id: str) -> Completion:
        return Completion(
            id=completion_id,
            model=self.model_id,
            content=self.content,
            tool_calls=self.tool_calls,
            finish_reason=self.finish_reason,
            usage=self.served_usage(),
            confidence=self.confidence,
        )

    def chunks(self) -> list[Chunk]:
        """The answer as a stream, as a live one ends: content, the tool calls (each
        whole, in one delta), the finish reason, then usage."""
        out: list[Chunk] = []
        if self.content:
            out.append(Chunk(content=self.content))
        out.extend(
            Chunk(
                tool_calls=(ToolCallDelta(i, call.id, call.function.name, call.function.arguments),)
            )
            for i, call in enumerate(self.tool_calls)
        )
        out.append(Chunk(finish_reason=self.finish_reason, confidence=self.confidence))
        out.append(Chunk(usage=self.served_usage()))
        return out


class StreamRecorder:
    """Rebuilds the whole answer from a live stream's chunks, to store it once the
    stream has completed normally."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, list[str]] = {}
        self.call_ids: dict[int, str] = {}
        self.call_names: dict[int, str] = {}
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.confidence: float | None = None

    def see(self, chunk: Chunk) -> None:
        if chunk.content:
            self.text.append(chunk.content)
        for delta in chunk.tool_calls:
            self.calls.setdefault(delta.index, []).append(delta.arguments)
            if delta.id is not None:
                self.call_ids[delta.index] = delta.id
            if delta.name is not None:
                self.call_names[delta.index] = delta.name
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.confidence is not None:
            self.confidence = chunk.confidence

    def tool_calls(self) -> tuple[ToolCall, ...] | None:
        """The streamed tool calls, or None when one never got its id or name."""
        calls = []
        for index in sorted(self.calls):
            call_id, name = self.call_ids.get(index), self.call_names.get(index)
            if call_id is None or name is None:
                return None
            arguments = "".join(self.calls[index])
            calls.append(
                ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))
            )
        return tuple(calls)
