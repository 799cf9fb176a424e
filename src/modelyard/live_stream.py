"""A stream that has produced content, handed to the caller to iterate once.

It bills its attempt when iteration ends, however it ends: finished (`ok`),
failed mid-way (`error`, after the content already sent — never a silent switch to
another model), or abandoned by the caller (`cancelled`). Usage is what the
provider reported, or, for a stream cut short, what was streamed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import anyio

from modelyard.attempts import checked_usage
from modelyard.catalog.tokens import count_text
from modelyard.errors import ClientClosedError, LowConfidenceError, ModelyardError
from modelyard.ledger.records import AttemptStatus, UsageSource
from modelyard.routing.plan import Decision
from modelyard.types import ChatRequest, Chunk, Completion, Money, Usage

if TYPE_CHECKING:
    from modelyard.cache.note import CacheNote
    from modelyard.cascade.trace import CascadeTrace
    from modelyard.council.result import CouncilResult
    from modelyard.executor import Attempt, CallContext, Executor, FailedAttempt


class StreamTap(Protocol):
    """Sees every chunk the caller is shown, and is told when the stream completed
    normally (the response cache keeps a miss's answer this way)."""

    def see(self, chunk: Chunk) -> None: ...

    async def completed(self, live: LiveStream) -> None: ...


class LiveStream:
    """A stream that has produced content: iterate it once; it bills itself at the end.

    `billed_cost` is set for a stream replayed from an answer that was billed already
    (a specialist's low-confidence answer with nothing left to escalate to)."""

    def __init__(
        self,
        executor: Executor,
        decision: Decision,
        ctx: CallContext,
        attempt: Attempt,
        head: list[Chunk],
        rest: AsyncIterator[Chunk],
        failed: tuple[FailedAttempt, ...],
        *,
        request: ChatRequest,
        billed_cost: Money | None = None,
    ) -> None:
        self._executor = executor
        self.decision = decision
        self._ctx = ctx
        self._attempt = attempt
        self._head = head
        self._rest = rest
        self._request = request
        self.failed = failed
        self.card = attempt.candidate.card
        self.usage: Usage | None = None
        self.usage_source: UsageSource = "reported"
        self.confidence: float | None = None
        self.cost_usd: Money | None = billed_cost
        # Set by a cascade: its hops and verdicts (for the response headers).
        self.cascade: CascadeTrace | None = None
        # Set by a council: its members, claims and agreement (body and headers).
        self.council: CouncilResult | None = None
        # Billed before this stream by escalated attempts of the same request: the
        # final chunk shows the request's total.
        self.prior_cost: Money = Money(0)
        # The low-confidence answer returned as the last resort (see `Outcome`).
        self.last_resort: LowConfidenceError | None = None
        # The response cache's verdict (`x-modelyard-cache`), and its tap on a miss.
        self.cache: CacheNote | None = None
        self.tap: StreamTap | None = None
        # Told how the stream ended, once it is billed (None: it finished); set by
        # the engine when something observes requests (metrics, traces).
        self.on_end: Callable[[ModelyardError | None], None] | None = None

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        status: AttemptStatus = "cancelled"
        error: ModelyardError | None = None
        try:
            for chunk in self._head:
                yield self._seen(chunk)
            async for chunk in self._rest:
                collect(self._attempt, chunk)
                yield self._seen(chunk)
            status = "ok"
        except ModelyardError as exc:
            status, error = "error", exc
            raise
        finally:
            await close_stream(self._rest)
            if self.cost_usd is None:
                await self._bill(status, error)
            if status == "ok" and self.tap is not None:
                await self.tap.completed(self)
            if self.on_end is not None:
                gone = ClientClosedError("the client stopped reading the stream")
                self.on_end(None if status == "ok" else error or gone)

    async def _bill(self, status: AttemptStatus, error: ModelyardError | None) -> None:
        usage, source = self.usage, self.usage_source
        if usage is None:
            usage, source = self._streamed_usage(), "estimated"
        ex = self._executor
        self.cost_usd = await ex.bill(
            self.decision,
            self._ctx,
            self._attempt,
            usage,
            status,
            error,
            self.confidence,
            source=source,
        )
        if status == "ok":
            text = "".join(self._attempt.streamed_text)
            await ex.capture(self.decision, self._ctx, self._attempt, self._request, text)
            total = self.cost_usd + self.prior_cost
            ex.served(self.decision, self._ctx, self._request, self.card.id, text, total)

    def _seen(self, chunk: Chunk) -> Chunk:
        if chunk.usage is not None:
            # Checked before it is shown: the caller sees the usage that is billed.
            usage, self.usage_source = checked_usage(
                chunk.usage,
                self.card,
                prompt_tokens=self.decision.requirements.prompt_tokens,
                output_text="".join(self._attempt.streamed_text),
                request_id=self._ctx.request_id,
            )
            if usage != chunk.usage:
                chunk = replace(chunk, usage=usage)
            self.usage = usage
        if chunk.confidence is not None:
            self.confidence = chunk.confidence
        if self.tap is not None:
            self.tap.see(chunk)
        return chunk

    def _streamed_usage(self) -> Usage:
        """No usage reported (stream cut or cancelled): bill the tokens we saw."""
        prompt = self.decision.requirements.prompt_tokens
        return Usage(
            input_tokens=prompt, output_tokens=count_text("".join(self._attempt.streamed_text))
        )


def collect(attempt: Attempt, chunk: Chunk) -> None:
    """Keep what a chunk streamed, to bill it if the stream is cut short."""
    if chunk.content:
        attempt.streamed_text.append(chunk.content)
    for call in chunk.tool_calls:
        attempt.streamed_text.append((call.name or "") + call.arguments)


async def close_stream(chunks: AsyncIterator[Chunk]) -> None:
    """Close a provider stream (and its connection), even from a cancelled task."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()


def completion_chunks(completion: Completion) -> list[Chunk]:
    """A finished answer as a stream: its content, then the end with its usage."""
    return [
        Chunk(content=completion.content or ""),
        Chunk(finish_reason=completion.finish_reason, usage=completion.usage),
    ]


async def no_more_chunks() -> AsyncIterator[Chunk]:
    """An already-exhausted stream."""
    return
    yield  # pragma: no cover - makes this an async generator
