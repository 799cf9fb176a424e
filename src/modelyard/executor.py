"""The executor: the only code that talks to providers.

It interprets a `Decision`: tries its candidates in order, moves on after a
retryable failure (never after the caller's own 4xx), and writes one ledger
record per attempt — before the caller's response is finished. Streams fail over
transparently until the first content chunk; after that a failure ends the stream
with an error and the partial attempt is billed for what was streamed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio

from modelyard.catalog.cards import ModelCard
from modelyard.catalog.tokens import count_text
from modelyard.errors import (
    AllAttemptsFailedError,
    ModelyardError,
    ProviderError,
    ProviderResponseError,
)
from modelyard.ledger.records import AttemptStatus, CallRecord, LedgerStore
from modelyard.providers.base import ChatProvider
from modelyard.routing.plan import Decision, RankedCandidate
from modelyard.types import ChatRequest, Chunk, Completion, Money, Usage

DEFAULT_MAX_ATTEMPTS = 3


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CallContext:
    """Identifies one caller request across its attempts."""

    request_id: str
    caller: str | None = None


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    model_id: str
    error: ModelyardError


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished non-streamed call: the answer, who gave it and what it cost."""

    completion: Completion
    card: ModelCard
    cost_usd: Money
    failed: tuple[FailedAttempt, ...]


@dataclass
class _Attempt:
    """Book-keeping for one provider attempt while it runs."""

    candidate: RankedCandidate
    number: int
    started_at: datetime
    t0: float
    ttft_ms: float | None = None
    streamed_text: list[str] = field(default_factory=list)


class Executor:
    """Runs decisions against providers (keyed by deployment name) and bills each attempt."""

    def __init__(
        self,
        providers: Mapping[str, ChatProvider],
        ledger: LedgerStore,
        *,
        ids: Callable[[], str],
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.providers = providers
        self.ledger = ledger
        self.ids = ids
        self.clock = clock
        self.monotonic = monotonic
        self.max_attempts = max_attempts

    def _start(self, candidate: RankedCandidate, number: int) -> _Attempt:
        return _Attempt(candidate, number, self.clock(), self.monotonic())

    async def complete(self, decision: Decision, request: ChatRequest, ctx: CallContext) -> Outcome:
        """Try the decision's candidates in order until one answers."""
        failed: list[FailedAttempt] = []
        for number, candidate in enumerate(decision.candidates[: self.max_attempts], start=1):
            attempt = self._start(candidate, number)
            provider = self.providers[candidate.card.deployment.name]
            try:
                completion = await provider.complete(request, candidate.card.upstream)
            except ModelyardError as exc:
                await self.bill(decision, ctx, attempt, Usage(), "error", exc)
                if not exc.retryable:
                    raise
                failed.append(FailedAttempt(candidate.card.id, exc))
                continue
            except BaseException:
                await self.bill(decision, ctx, attempt, Usage(), "cancelled", None)
                raise
            cost = await self.bill(decision, ctx, attempt, completion.usage, "ok", None)
            return Outcome(completion, candidate.card, cost, tuple(failed))
        raise _exhausted(decision, failed)

    async def stream(
        self, decision: Decision, request: ChatRequest, ctx: CallContext
    ) -> LiveStream:
        """Open a stream, failing over until some candidate produces its first content."""
        failed: list[FailedAttempt] = []
        for number, candidate in enumerate(decision.candidates[: self.max_attempts], start=1):
            attempt = self._start(candidate, number)
            provider = self.providers[candidate.card.deployment.name]
            chunks = provider.stream(request, candidate.card.upstream)
            try:
                head = await self._until_content(chunks, attempt)
            except ModelyardError as exc:
                await _close(chunks)
                await self.bill(decision, ctx, attempt, Usage(), "error", exc)
                if not exc.retryable:
                    raise
                failed.append(FailedAttempt(candidate.card.id, exc))
                continue
            except BaseException:
                await _close(chunks)
                await self.bill(decision, ctx, attempt, Usage(), "cancelled", None)
                raise
            return LiveStream(self, decision, ctx, attempt, head, chunks, tuple(failed))
        raise _exhausted(decision, failed)

    async def _until_content(self, chunks: AsyncIterator[Chunk], attempt: _Attempt) -> list[Chunk]:
        """Read chunks until the first with content (or the end); errors here fail over."""
        head: list[Chunk] = []
        async for chunk in chunks:
            head.append(chunk)
            if chunk.has_content or chunk.finish_reason or chunk.usage:
                attempt.ttft_ms = (self.monotonic() - attempt.t0) * 1000
                _collect(attempt, chunk)
                return head
        raise ProviderResponseError(
            "stream ended before any content", provider=attempt.candidate.card.deployment.name
        )

    async def bill(
        self,
        decision: Decision,
        ctx: CallContext,
        attempt: _Attempt,
        usage: Usage,
        status: AttemptStatus,
        error: ModelyardError | None,
    ) -> Money:
        """Write the attempt's record; shielded so a cancelled caller still gets billed."""
        card = attempt.candidate.card
        cost = card.prices.cost(usage)
        record = CallRecord(
            id=self.ids(),
            request_id=ctx.request_id,
            decision_id=decision.id,
            policy=decision.policy,
            model_id=card.id,
            deployment=card.deployment.name,
            upstream_model=card.upstream,
            attempt=attempt.number,
            started_at=attempt.started_at,
            latency_ms=(self.monotonic() - attempt.t0) * 1000,
            ttft_ms=attempt.ttft_ms,
            status=status,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cost_usd=cost,
            error_class=type(error).__name__ if error else None,
            error_message=error.message[:500] if error else None,
            streamed=bool(attempt.streamed_text) or attempt.ttft_ms is not None,
            caller=ctx.caller,
            scorer_version=decision.scorer_version,
            reasons=decision.explain(),
        )
        with anyio.CancelScope(shield=True):
            await self.ledger.write(record)
        return cost


class LiveStream:
    """A stream that has produced content: iterate it once; it bills itself at the end."""

    def __init__(
        self,
        executor: Executor,
        decision: Decision,
        ctx: CallContext,
        attempt: _Attempt,
        head: list[Chunk],
        rest: AsyncIterator[Chunk],
        failed: tuple[FailedAttempt, ...],
    ) -> None:
        self._executor = executor
        self.decision = decision
        self._ctx = ctx
        self._attempt = attempt
        self._head = head
        self._rest = rest
        self.failed = failed
        self.card = attempt.candidate.card
        self.usage: Usage | None = None
        self.cost_usd: Money | None = None

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        status: AttemptStatus = "cancelled"
        error: ModelyardError | None = None
        try:
            for chunk in self._head:
                yield self._seen(chunk)
            async for chunk in self._rest:
                _collect(self._attempt, chunk)
                yield self._seen(chunk)
            status = "ok"
        except ModelyardError as exc:
            status, error = "error", exc
            raise
        finally:
            await _close(self._rest)
            usage = self.usage or self._streamed_usage()
            self.cost_usd = await self._executor.bill(
                self.decision, self._ctx, self._attempt, usage, status, error
            )

    def _seen(self, chunk: Chunk) -> Chunk:
        if chunk.usage is not None:
            self.usage = chunk.usage
        return chunk

    def _streamed_usage(self) -> Usage:
        """No usage reported (stream cut or cancelled): bill the tokens we saw."""
        prompt = self.decision.requirements.prompt_tokens
        return Usage(
            input_tokens=prompt, output_tokens=count_text("".join(self._attempt.streamed_text))
        )


def _collect(attempt: _Attempt, chunk: Chunk) -> None:
    if chunk.content:
        attempt.streamed_text.append(chunk.content)
    for call in chunk.tool_calls:
        attempt.streamed_text.append((call.name or "") + call.arguments)


async def _close(chunks: AsyncIterator[Chunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()


def _exhausted(decision: Decision, failed: list[FailedAttempt]) -> ModelyardError:
    """One candidate: its own error. Several: 503 listing what was tried."""
    if len(failed) == 1 and len(decision.candidates) == 1:
        return failed[0].error
    tried = "; ".join(f"{f.model_id}: {f.error.message}" for f in failed)
    errors: list[tuple[str, ProviderError]] = [
        (f.model_id, f.error) for f in failed if isinstance(f.error, ProviderError)
    ]
    return AllAttemptsFailedError(f"every qualified model failed (tried {tried})", errors)
