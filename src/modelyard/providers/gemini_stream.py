"""Gemini streaming (`streamGenerateContent?alt=sse`): SSE events → `Chunk`s, no I/O.

Each `data:` event is a whole `GenerateContentResponse` holding the next piece of
the answer: text parts are deltas, a `functionCall` part arrives whole, and the
last event carries the `finishReason`; `usageMetadata` is cumulative, so the last
one seen is the call's. There is no terminator event: the server closes the
stream after the finishing event, so a stream that ends without a finish reason
was cut short.

A safety or fault finish after text was streamed ends the stream with an error
(the server turns it into an OpenAI-style error event), after a usage-only chunk so
the attempt is billed for the tokens Gemini counted; before any output it is a
plain error, which the executor may fail over.
"""

from __future__ import annotations

import json

from modelyard.errors import ProviderError
from modelyard.providers.gemini_response import (
    MalformedError,
    check_prompt_feedback,
    error_from_body,
    finish_error,
    finish_reason,
    read_parts,
    response_error,
    response_id,
    the_candidate,
    usage_from,
)
from modelyard.types import Chunk, ToolCallDelta, Usage


class StreamTranslator:
    """Feed each SSE event's data in order with `feed`; call `end` when the stream
    closes. `end` returns the final chunks and the error to raise after them, if any."""

    def __init__(self, *, provider: str) -> None:
        self._provider = provider
        self._response_id: str | None = None
        self._tool_count = 0
        self._streamed = False
        self._usage: Usage | None = None
        self._reason: str | None = None
        self._error: ProviderError | None = None

    def feed(self, data: str) -> list[Chunk]:
        """The chunks one event yields; raises for an error event, a blocked prompt,
        or a finish that is an error before any output."""
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise response_error(self._provider, "stream event is not a JSON object")
        if "error" in payload:
            raise self._error_event(payload)
        try:
            return self._chunks(payload)
        except MalformedError as exc:
            raise response_error(self._provider, f"malformed stream event: {exc}") from exc

    def _chunks(self, payload: dict[str, object]) -> list[Chunk]:
        check_prompt_feedback(payload, self._provider)
        if payload.get("usageMetadata") is not None:
            self._usage = usage_from(payload["usageMetadata"])
        if self._response_id is None:
            self._response_id = response_id(payload)
        candidate = the_candidate(payload)
        if candidate is None:
            return []
        parts = read_parts(candidate, self._response_id, self._tool_count)
        chunks: list[Chunk] = []
        text = "".join(parts.texts)
        if text:
            chunks.append(Chunk(content=text))
        if parts.calls:
            deltas = tuple(
                ToolCallDelta(
                    index=self._tool_count + n,
                    id=call.id,
                    name=call.function.name,
                    arguments=call.function.arguments,
                )
                for n, call in enumerate(parts.calls)
            )
            self._tool_count += len(deltas)
            chunks.append(Chunk(tool_calls=deltas))
        self._streamed = self._streamed or bool(chunks)
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            self._reason = reason
            error = finish_error(reason, candidate, self._provider, after_output=self._streamed)
            if error is not None and not self._streamed:
                raise error
            self._error = error
        return chunks

    def end(self) -> tuple[list[Chunk], ProviderError | None]:
        """The closing chunks, and the error to raise once they are sent."""
        if self._reason is None:
            return [], response_error(self._provider, "stream ended before a finishReason")
        if self._error is not None:
            # Usage alone: billed as reported, shown to a caller who asked for usage.
            return ([Chunk(usage=self._usage)] if self._usage else []), self._error
        final = Chunk(
            finish_reason=finish_reason(self._reason, self._tool_count > 0),
            usage=self._usage,  # None: billed from what was streamed
        )
        return [final], None

    def _error_event(self, payload: dict[str, object]) -> ProviderError:
        error = payload.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        return error_from_body(status, json.dumps(payload), self._provider)
