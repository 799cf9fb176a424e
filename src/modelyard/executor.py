"""The executor: the only code that talks to providers.

It interprets a `Decision`: tries its candidates in order, moves on after a
retryable failure (never after the caller's own 4xx), and writes one ledger
record per attempt — before the caller's response is finished. Streams fail over
transparently until the first content chunk; after that a failure ends the stream
with an error and the partial attempt is billed for what was streamed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import anyio

from modelyard.catalog.cards import ModelCard
from modelyard.catalog.tokens import count_text, scale_for_family
from modelyard.errors import (
    AllAttemptsFailedError,
    ModelyardError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from modelyard.health import HealthState, InProcessHealth
from modelyard.ledger.records import AttemptStatus, CallRecord, LedgerStore
from modelyard.providers.base import ChatProvider
from modelyard.routing.plan import Decision, RankedCandidate
from modelyard.types import ChatRequest, Chunk, Completion, Money, Usage

DEFAULT_MAX_ATTEMPTS = 3
_T = TypeVar("_T")


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


@dataclass(frozen=True, slots=True)
class Limits:
    """How hard one request tries (from the config's `resilience` section)."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    request_timeout_s: float = 300.0
    attempt_timeout_s: float = 120.0
    first_token_timeout_s: float = 30.0
    retry_wait_max_s: float = 2.0


class _Run:
    """One request's walk down its decision: attempt count, deadline, skips, retries."""

    def __init__(self, executor: Executor, decision: Decision) -> None:
        self.ex = executor
        self.decision = decision
        self.queue = list(decision.candidates)
        self.deadline = executor.monotonic() + executor.limits.request_timeout_s
        self.number = 0
        self.failed: list[FailedAttempt] = []
        self.skipped: list[str] = []
        self.retried: set[str] = set()
        self.wait_s = 0.0

    def remaining(self) -> float:
        return self.deadline - self.ex.monotonic()

    async def next(self) -> RankedCandidate | None:
        """The next candidate to try, or None when attempts, time or candidates run out."""
        if self.wait_s > 0:
            await anyio.sleep(self.wait_s)
            self.wait_s = 0.0
        while self.queue and self.number < self.ex.limits.max_attempts and self.remaining() > 0:
            candidate = self.queue.pop(0)
            deployment = candidate.card.deployment.name
            if not self.ex.health.acquire(deployment, self.ex.monotonic()):
                reason = self.ex.health.unavailable(self.ex.monotonic()).get(deployment, "busy")
                self.skipped.append(f"{candidate.card.id}: skipped ({reason})")
                continue
            self.number += 1
            return candidate
        return None

    def failed_with(self, candidate: RankedCandidate, exc: ModelyardError) -> None:
        """Note a retryable failure; wait out a short Retry-After when nothing else is left."""
        self.failed.append(FailedAttempt(candidate.card.id, exc))
        # Only a wait the provider named is waited out: without Retry-After the
        # deployment cools down for the default period and the 429 is returned.
        retry_after = getattr(exc, "retry_after", None)
        if (
            isinstance(exc, ProviderRateLimitError)
            and retry_after is not None
            and not self.queue
            and candidate.card.id not in self.retried
            and retry_after <= self.ex.limits.retry_wait_max_s
            and retry_after < self.remaining()
        ):
            self.retried.add(candidate.card.id)
            self.wait_s = retry_after
            self.queue.append(candidate)

    def timeout(self, limit_s: float) -> float:
        return max(0.0, min(limit_s, self.remaining()))

    def exhausted(self) -> ModelyardError:
        return _exhausted(self.decision, self.failed, self.skipped)


class Executor:
    """Runs decisions against providers (keyed by deployment name) and bills each attempt."""

    def __init__(
        self,
        providers: Mapping[str, ChatProvider],
        ledger: LedgerStore,
        *,
        ids: Callable[[], str],
        health: HealthState | None = None,
        limits: Limits | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.providers = providers
        self.ledger = ledger
        self.ids = ids
        self.health: HealthState = health or InProcessHealth()
        self.limits = limits or Limits()
        self.clock = clock
        self.monotonic = monotonic

    def _start(self, candidate: RankedCandidate, number: int) -> _Attempt:
        return _Attempt(candidate, number, self.clock(), self.monotonic())

    async def complete(self, decision: Decision, request: ChatRequest, ctx: CallContext) -> Outcome:
        """Try the decision's candidates in order until one answers (hedged if the
        policy asks for it)."""
        run = _Run(self, decision)
        hedge_s = (decision.hedge_after_ms or 0) / 1000
        while (candidate := await run.next()) is not None:
            if hedge_s and run.queue:
                outcome = await self._hedged(run, candidate, hedge_s, request, ctx)
            else:
                outcome = await self._attempt(run, candidate, request, ctx)
            if outcome is not None:
                return outcome
        raise run.exhausted()

    async def _attempt(
        self, run: _Run, candidate: RankedCandidate, request: ChatRequest, ctx: CallContext
    ) -> Outcome | None:
        """One billed attempt: the outcome, or None after a retryable failure."""
        attempt = self._start(candidate, run.number)
        provider = self.providers[candidate.card.deployment.name]
        limit = run.timeout(self.limits.attempt_timeout_s)
        try:
            completion = await _within(
                provider.complete(request, candidate.card.upstream), limit, candidate
            )
        except ModelyardError as exc:
            await self._failure(run.decision, ctx, attempt, exc)
            run.failed_with(candidate, exc)
            return None
        except BaseException:
            await self._cancelled(run.decision, ctx, attempt)
            raise
        cost = await self.bill(run.decision, ctx, attempt, completion.usage, "ok", None)
        return Outcome(completion, candidate.card, cost, tuple(run.failed))

    async def _hedged(
        self,
        run: _Run,
        first: RankedCandidate,
        hedge_s: float,
        request: ChatRequest,
        ctx: CallContext,
    ) -> Outcome | None:
        """Start `first`; if it has not finished after `hedge_s`, start the next candidate
        too. The first answer wins; the loser is cancelled and billed as such."""
        outcomes: list[Outcome] = []
        fatal: list[ModelyardError] = []
        first_done = anyio.Event()

        async with anyio.create_task_group() as tg:

            async def race(candidate: RankedCandidate, done: anyio.Event | None) -> None:
                try:
                    if (outcome := await self._attempt(run, candidate, request, ctx)) is not None:
                        outcomes.append(outcome)
                        tg.cancel_scope.cancel()
                except ModelyardError as exc:  # not retryable: stop the race, report it
                    fatal.append(exc)
                    tg.cancel_scope.cancel()
                finally:
                    if done is not None:
                        done.set()

            tg.start_soon(race, first, first_done)
            with anyio.move_on_after(hedge_s):
                await first_done.wait()
            if not first_done.is_set() and (second := await run.next()) is not None:
                tg.start_soon(race, second, None)
        if fatal:
            raise fatal[0]
        return outcomes[0] if outcomes else None

    async def stream(
        self, decision: Decision, request: ChatRequest, ctx: CallContext
    ) -> LiveStream:
        """Open a stream, failing over until some candidate produces its first content."""
        run = _Run(self, decision)
        while (candidate := await run.next()) is not None:
            attempt = self._start(candidate, run.number)
            provider = self.providers[candidate.card.deployment.name]
            chunks = provider.stream(request, candidate.card.upstream)
            limit = run.timeout(self.limits.first_token_timeout_s)
            try:
                head = await _within(self._until_content(chunks, attempt), limit, candidate)
            except ModelyardError as exc:
                await _close(chunks)
                await self._failure(decision, ctx, attempt, exc)
                run.failed_with(candidate, exc)
                continue
            except BaseException:
                await _close(chunks)
                await self._cancelled(decision, ctx, attempt)
                raise
            return LiveStream(self, decision, ctx, attempt, head, chunks, tuple(run.failed))
        raise run.exhausted()

    async def _failure(
        self, decision: Decision, ctx: CallContext, attempt: _Attempt, exc: ModelyardError
    ) -> None:
        """Bill a failed attempt; re-raise it at once when it is not worth another try."""
        await self.bill(decision, ctx, attempt, Usage(), "error", exc)
        if not exc.retryable:
            raise exc

    async def _cancelled(self, decision: Decision, ctx: CallContext, attempt: _Attempt) -> None:
        """A call abandoned mid-flight (hedge loser, client gone, deadline): providers
        bill a prompt they started on, so bill its estimated size, not zero."""
        card = attempt.candidate.card
        prompt = scale_for_family(decision.requirements.prompt_tokens, card.family)
        await self.bill(decision, ctx, attempt, Usage(input_tokens=prompt), "cancelled", None)

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
        cost = usage.cost_usd if usage.cost_usd is not None else card.prices.cost(usage)
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
        self._report_health(card.deployment.name, status, error)
        with anyio.CancelScope(shield=True):
            await self.ledger.write(record)
        return cost

    def _report_health(
        self, deployment: str, status: AttemptStatus, error: ModelyardError | None
    ) -> None:
        now = self.monotonic()
        if status == "ok":
            self.health.record_success(deployment, now)
        elif error is not None:
            self.health.record_failure(deployment, error, now)
        else:
            self.health.release(deployment)


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


async def _within(work: Awaitable[_T], limit_s: float, candidate: RankedCandidate) -> _T:
    """Await `work` for at most `limit_s`; a timeout becomes a retryable provider error."""
    with anyio.move_on_after(limit_s):
        return await work
    if inspect.iscoroutine(work):
        work.close()
    deployment = candidate.card.deployment.name
    raise ProviderTimeoutError(
        f"{deployment}: no answer from {candidate.card.id} within {limit_s:.2f}s",
        provider=deployment,
    )


def _exhausted(
    decision: Decision, failed: list[FailedAttempt], skipped: list[str] | None = None
) -> ModelyardError:
    """One candidate: its own error. Several: 503 listing what was tried and skipped."""
    # Qualified models the router skipped as unhealthy were "tried" too, in effect.
    unhealthy = [f"{r.model_id}: {r.reason}" for r in decision.rejected if " skipped: " in r.reason]
    if failed and len(decision.candidates) == 1 and not skipped and not unhealthy:
        return failed[-1].error
    tried = "; ".join(
        [*(f"{f.model_id}: {f.error.message}" for f in failed), *(skipped or []), *unhealthy]
    )
    if not failed:
        return AllAttemptsFailedError(f"no qualified model could be tried ({tried})", [])
    errors: list[tuple[str, ProviderError]] = [
        (f.model_id, f.error) for f in failed if isinstance(f.error, ProviderError)
    ]
    return AllAttemptsFailedError(f"every qualified model failed (tried {tried})", errors)
