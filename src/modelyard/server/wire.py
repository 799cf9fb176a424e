"""Rendering modelyard's neutral results as OpenAI chat-completions JSON and SSE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from modelyard.errors import LowConfidenceError
from modelyard.executor import FailedAttempt
from modelyard.server.scrub import scrub
from modelyard.types import Chunk, Completion, Usage, money_text


def chat_id(upstream_id: str) -> str:
    """A `chatcmpl-` id; an upstream id that already has the prefix keeps it once."""
    return upstream_id if upstream_id.startswith("chatcmpl-") else f"chatcmpl-{upstream_id}"


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def attempts_json(failed: tuple[FailedAttempt, ...]) -> list[dict[str, str]]:
    return [
        {"model": f.model_id, "error": type(f.error).__name__, "message": scrub(f.error.message)}
        for f in failed
    ]


def completion_json(
    completion: Completion,
    *,
    model: str,
    created: int,
    decision_id: str,
    cost_usd: Decimal,
    failed: tuple[FailedAttempt, ...],
    last_resort: LowConfidenceError | None = None,
) -> dict[str, Any]:
    """A `chat.completion` object, plus a `modelyard` block with the routing facts."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.content, "refusal": None}
    if completion.tool_calls:
        message["tool_calls"] = [call.model_dump() for call in completion.tool_calls]
    return {
        "id": chat_id(completion.id),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": usage_json(completion.usage),
        "modelyard": {
            "decision_id": decision_id,
            "cost_usd": money_text(cost_usd),
            "failed_attempts": attempts_json(failed),
            "low_confidence": None if last_resort is None else low_confidence_json(last_resort),
        },
    }


def low_confidence_json(error: LowConfidenceError) -> dict[str, Any]:
    """Why a specialist's answer was returned although it wanted to escalate."""
    return {
        "reason": error.code,
        "confidence": round(error.confidence, 4),
        "threshold": round(error.threshold, 4),
        "oos_score": None if error.oos_score is None else round(error.oos_score, 4),
        "oos_threshold": None if error.oos_threshold is None else round(error.oos_threshold, 4),
    }


def low_confidence_header(error: LowConfidenceError) -> str:
    """`x-modelyard-low-confidence`: `low_confidence; confidence=0.41; threshold=0.6`."""
    return "; ".join(
        [
            error.code,
            *(
                f"{k}={v}"
                for k, v in low_confidence_json(error).items()
                if k != "reason" and v is not None
            ),
        ]
    )


class ChunkRenderer:
    """Turns a stream of `Chunk`s into OpenAI `chat.completion.chunk` SSE events."""

    def __init__(self, *, stream_id: str, model: str, created: int, include_usage: bool) -> None:
        self.stream_id = stream_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self._sent_role = False

    def _envelope(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {
            "id": self.stream_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    def _delta(self, chunk: Chunk) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if not self._sent_role:
            delta["role"] = "assistant"
            self._sent_role = True
        if chunk.content:
            delta["content"] = chunk.content
        if chunk.tool_calls:
            delta["tool_calls"] = [_tool_delta(t) for t in chunk.tool_calls]
        return delta

    def events(self, chunk: Chunk, cost_usd: Decimal | None) -> Iterator[str]:
        """Zero to two SSE events for one chunk: the delta, then usage if asked for."""
        if chunk.has_content or chunk.finish_reason or not self._sent_role:
            choice = {
                "index": 0,
                "delta": self._delta(chunk),
                "logprobs": None,
                "finish_reason": chunk.finish_reason,
            }
            yield self._envelope([choice])
        if chunk.usage is not None and self.include_usage:
            extra: dict[str, Any] = {"usage": usage_json(chunk.usage)}
            if cost_usd is not None:
                extra["modelyard"] = {"cost_usd": money_text(cost_usd)}
            yield self._envelope([], **extra)

    @staticmethod
    def error(body: dict[str, Any]) -> str:
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    @staticmethod
    def done() -> str:
        return "data: [DONE]\n\n"


def _tool_delta(t: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"index": t.index}
    if t.id is not None:
        out["id"] = t.id
        out["type"] = "function"
    function: dict[str, Any] = {"arguments": t.arguments}
    if t.name is not None:
        function["name"] = t.name
    out["function"] = function
    return out
