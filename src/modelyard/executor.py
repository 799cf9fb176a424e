"""The executor: the only code that talks to providers.

It interprets a `Decision`: tries its candidates in order, moves on after a
retryable failure (never after the caller's own 4xx), and writes one ledger
record per attempt — before the caller's response is finished. Streams fail over
transparently until the first content chunk; after that a failure ends the stream
with an error and the partial attempt is billed for what was streamed (see
`live_stream`). With `hedge_after_ms`, a slow first choice races the next one, up
to the whole answer (non-streamed) or the first content (streamed); the loser is
cancelled and billed for what it consumed. A specialist that answers below its
confidence threshold escalates to the next candidate.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol, TypeVar

import anyio

from modelyard.attempt_types import (
    Attempt,
    CallContext,
    FailedAttempt,
    Limits,
    Outcome,
)
from modelyard.attempts import (
    checked_usage,
    completion_text,
    enter_flight,
    leave_flight,
    reached_network,
    reservation,
    safe_cost,
    with_usage,
)
from modelyard.budgets.gate import BudgetGate
from modelyard.budgets.spec import budget_cost
from modelyard.catalog.cards import ModelCard
from modelyard.catalog.tokens import count_text, scale_for_family
from modelyard.errors import (
    AllAttemptsFailedError,
    BudgetExceededError,
    LowConfidenceError,
    ModelyardError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from modelyard.health import HealthState, InProcessHealth
from modelyard.ledger.records import (
    OPEN_STATUS,
    AttemptStatus,
    CallRecord,
    Exchange,
    LedgerStore,
    UsageSource,
)
from modelyard.live_stream import (
    LiveStream,
    close_stream,
    collect,
    completion_chunks,
    no_more_chunks,
)
from modelyard.observability.hooks import Telemetry
from modelyard.providers.base import ChatProvider
from modelyard.routing.plan import Decision, RankedCandidate
from modelyard.types import ChatRequest, Chunk, Completion, Money, Usage

_T = TypeVar("_T")
# The value types live in `attempt_types`; callers import them from here too.
__all__ = [
    "Attempt",
    "CallContext",
    "Executor",
    "FailedAttempt",
    "Limits",
    "Outcome",
    "utc_now",
]
log = logging.getLogger("modelyard.executor")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Opened:
    """A stream attempt that has produced its first content."""

    attempt: Attempt
    head: list[Chunk]
    chunks: AsyncIterator[Chunk]


@dataclass(frozen=True, slots=True)
class _Escalation:
    """A specialist's low-confidence answer, already billed; the answer of last resort."""

    attempt: Attempt
    error: LowConfidenceError
    cost_usd: Money


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
        self.escalation: _Escalation | None = None
        # What escalated attempts of this request were billed: the caller's cost is
        # the request's total, not only the last attempt's.
        self.escalated_cost: Money = Decimal(0)

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

    def failed_before(self, escalation: _Escalation) -> tuple[FailedAttempt, ...]:
        """The failures to report with an escalated answer: all but the escalation."""
        return tuple(f for f in self.failed if f.error is not escalation.error)


class AnswerObserver(Protocol):
    """Told about every served answer (shadowed specialists listen here)."""

    def observe(
        self,
        *,
        task: str | None,
        request: ChatRequest,
        request_id: str,
        decision_id: str,
        served_model: str,
        answer: str | None,
        served_cost: Money,
    ) -> None: ...


class Executor:
    """Runs decisions against providers (keyed by deployment name) and bills each attempt.

    `capture_tasks`: the tasks whose successful exchanges (prompt and answer) are
    kept in the ledger for distillation; `*` means every task. Empty by default:
    prompts may be sensitive, so capturing them is opt-in."""

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
        capture_tasks: frozenset[str] = frozenset(),
        observer: AnswerObserver | None = None,
    ) -> None:
        self.providers = providers
        self.ledger = ledger
        self.ids = ids
        self.health: HealthState = health or InProcessHealth()
        self.limits = limits or Limits()
        self.clock = clock
        self.monotonic = monotonic
        self.capture_tasks = capture_tasks
        # Plans a request (the Engine sets it to its router): a cascade's `judge`
        # verifier routes its own call through it.
        self.planner: Callable[[ChatRequest], Decision] | None = None
        # Issue 12: reserve before each attempt's write-ahead, settle after it.
        self.budgets: BudgetGate | None = None
        self.observer = observer
        # Issue 15: told about every billed attempt and hedge (metrics, traces).
        self.telemetry: Telemetry | None = None

    def _start(self, candidate: RankedCandidate, number: int) -> Attempt:
        """An attempt's book-keeping, not written ahead: `bill` then writes its record
        once, at the end. Every provider call should go through `_begin` instead."""
        return Attempt(candidate, number, self.clock(), self.monotonic())

    async def _begin(
        self, decision: Decision, ctx: CallContext, candidate: RankedCandidate, number: int
    ) -> Attempt:
        """Write the attempt ahead (`started`, at its reservation estimate), committed
        before its provider call can leave the process. Run the call itself inside
        `attempts.enter_flight()`/`leave_flight()` (so `_abandoned` can tell whether it
        reached the network) and end it with `bill`, `_failure` or `_abandoned`."""
        attempt = self._start(candidate, number)
        attempt.record_id = self.ids()
        card = candidate.card
        req = decision.requirements
        estimate = reservation(card, req.prompt_tokens, req.max_output_tokens)
        record = self.record_of(decision, ctx, attempt, estimate, OPEN_STATUS, None, None)
        gate = self.budgets if ctx.principal is not None else None
        if gate is not None and ctx.principal is not None:
            # Reserved before the write-ahead: a refused reservation writes nothing.
            amount = budget_cost(card, req.prompt_tokens, req.max_output_tokens)
            # Shielded: a reservation made must be known, to be settled or released.
            with anyio.CancelScope(shield=True):
                await gate.reserve(attempt.record_id, ctx.principal, amount)
        try:
            with anyio.CancelScope(shield=True):
                await self.ledger.start(replace(record, latency_ms=0.0, usage_source="estimated"))
        except BaseException:
            if gate is not None:
                with anyio.CancelScope(shield=True):
                    await gate.release(attempt.record_id)
            raise
        return attempt

    async def _begin_or_skip(
        self, run: _Run, ctx: CallContext, candidate: RankedCandidate
    ) -> Attempt | None:
        """`_begin`, or None when the attempt cannot be reserved within a budget
        (another request took the headroom since planning): the next, cheaper
        candidate is tried instead."""
        try:
            return await self._begin(run.decision, ctx, candidate, run.number)
        except BudgetExceededError as exc:
            self.health.release(candidate.card.deployment.name)
            run.failed.append(FailedAttempt(candidate.card.id, exc))
            return None

    async def _abandoned(
        self, decision: Decision, ctx: CallContext, attempt: Attempt, exc: BaseException
    ) -> None:
        """The provider call ended by something other than a provider error: a
        cancellation (hedge loser, client gone, deadline) or a bug. Billed `cancelled`
        only if the call may have reached the network; otherwise the write-ahead
        record is dropped and nothing is billed."""
        provider = self.providers[attempt.candidate.card.deployment.name]
        if reached_network(provider, attempt.flight):
            await self._cancelled(decision, ctx, attempt, exc)
            return
        if isinstance(exc, Exception):
            log.error(
                "request %s: internal error before %s was called; not billed",
                ctx.request_id,
                attempt.candidate.card.id,
                exc_info=exc,
            )
        self.health.release(attempt.candidate.card.deployment.name)
        if attempt.record_id is not None:
            with anyio.CancelScope(shield=True):
                await self.ledger.discard(attempt.record_id)
                if self.budgets is not None:
                    await self.budgets.release(attempt.record_id)

    async def complete(self, decision: Decision, request: ChatRequest, ctx: CallContext) -> Outcome:
        """Try the decision's candidates in order until one answers (hedged if the
        policy asks for it)."""
        if decision.cascade is not None:
            from modelyard.cascade.runner import run_cascade

            return await run_cascade(self, decision, request, ctx)
        if decision.council is not None:
            from modelyard.council.runner import run_council

            return await run_council(self, decision, request, ctx)
        run = _Run(self, decision)

        async def attempt(candidate: RankedCandidate) -> Outcome | None:
            return await self._attempt(run, candidate, request, ctx)

        async def keep(_: Outcome) -> None:
            """A second hedge that also finished: it was billed in full; nothing to undo."""

        while (candidate := await run.next()) is not None:
            if (outcome := await self._one_or_race(run, candidate, attempt, keep)) is not None:
                return outcome
        if (esc := run.escalation) is not None:
            card = esc.attempt.candidate.card
            failed = run.failed_before(esc)
            return Outcome(
                esc.error.completion, card, run.escalated_cost, failed, last_resort=esc.error
            )
        raise run.exhausted()

    async def _attempt(
        self, run: _Run, candidate: RankedCandidate, request: ChatRequest, ctx: CallContext
    ) -> Outcome | None:
        """One billed attempt: the outcome, or None after a retryable failure."""
        provider = self.providers[candidate.card.deployment.name]
        if (attempt := await self._begin_or_skip(run, ctx, candidate)) is None:
            return None
        limit = run.timeout(self.limits.attempt_timeout_s)
        attempt.flight, token = enter_flight()
        try:
            completion = await _within(
                provider.complete(request, candidate.card.upstream), limit, candidate
            )
        except LowConfidenceError as exc:
            await self._escalate(run, ctx, attempt, exc)
            return None
        except ModelyardError as exc:
            await self._failure(run.decision, ctx, attempt, exc)
            run.failed_with(candidate, exc)
            return None
        except BaseException as exc:
            await self._abandoned(run.decision, ctx, attempt, exc)
            raise
        finally:
            leave_flight(token)
        usage, source = self._checked(run.decision, ctx, candidate.card, completion)
        cost = await self.bill(
            run.decision, ctx, attempt, usage, "ok", None, completion.confidence, source=source
        )
        await self.capture(run.decision, ctx, attempt, request, completion.content)
        total = cost + run.escalated_cost
        self.served(run.decision, ctx, request, candidate.card.id, completion.content, total)
        return Outcome(with_usage(completion, usage), candidate.card, total, tuple(run.failed))

    def _checked(
        self, decision: Decision, ctx: CallContext, card: ModelCard, completion: Completion
    ) -> tuple[Usage, UsageSource]:
        """The answer's usage if it can be true, else the tokenizer's estimate."""
        return checked_usage(
            completion.usage,
            card,
            prompt_tokens=decision.requirements.prompt_tokens,
            output_text=completion_text(completion),
            request_id=ctx.request_id,
        )

    async def _one_or_race(
        self,
        run: _Run,
        first: RankedCandidate,
        try_one: Callable[[RankedCandidate], Awaitable[_T | None]],
        discard: Callable[[_T], Awaitable[None]],
    ) -> _T | None:
        """`try_one(first)`, or, when the policy hedges and a runner-up is left, a race."""
        hedge_s = (run.decision.hedge_after_ms or 0) / 1000
        if not (hedge_s and run.queue):
            return await try_one(first)
        winners = await self._race(run, first, hedge_s, try_one)
        for extra in winners[1:]:
            await discard(extra)
        return winners[0] if winners else None

    async def _race(
        self,
        run: _Run,
        first: RankedCandidate,
        hedge_s: float,
        try_one: Callable[[RankedCandidate], Awaitable[_T | None]],
    ) -> list[_T]:
        """Start `first`; if it has not finished after `hedge_s`, start the next candidate
        too. The first result cancels the other, which bills itself as cancelled. Two
        results come back only when both finished before the cancel took effect."""
        results: list[_T] = []
        fatal: list[ModelyardError] = []
        first_done = anyio.Event()

        async with anyio.create_task_group() as tg:

            async def run_one(candidate: RankedCandidate, done: anyio.Event | None) -> None:
                try:
                    if (result := await try_one(candidate)) is not None:
                        results.append(result)
                        tg.cancel_scope.cancel()
                except ModelyardError as exc:  # not retryable: stop the race, report it
                    fatal.append(exc)
                    tg.cancel_scope.cancel()
                finally:
                    if done is not None:
                        done.set()

            tg.start_soon(run_one, first, first_done)
            with anyio.move_on_after(hedge_s):
                await first_done.wait()
            if not first_done.is_set() and (second := await run.next()) is not None:
                if self.telemetry is not None:
                    self.telemetry.hedge_started(run.decision, second.card.id)
                tg.start_soon(run_one, second, None)
        if fatal and not results:
            raise fatal[0]
        return results

    async def stream(
        self, decision: Decision, request: ChatRequest, ctx: CallContext
    ) -> LiveStream:
        """Open a stream, failing over (or racing, when hedged) until some candidate
        produces its first content."""
        if decision.cascade is not None:
            from modelyard.cascade.runner import stream_cascade

            return await stream_cascade(self, decision, request, ctx)
        if decision.council is not None:
            from modelyard.council.runner import stream_council

            return await stream_council(self, decision, request, ctx)
        run = _Run(self, decision)

        async def open_one(candidate: RankedCandidate) -> _Opened | None:
            return await self._open(run, candidate, request, ctx)

        async def abandon(opened: _Opened) -> None:
            await close_stream(opened.chunks)
            await self._cancelled(decision, ctx, opened.attempt)

        while (candidate := await run.next()) is not None:
            if (opened := await self._one_or_race(run, candidate, open_one, abandon)) is not None:
                a, failed = opened.attempt, tuple(run.failed)
                live = LiveStream(
                    self, decision, ctx, a, opened.head, opened.chunks, failed, request=request
                )
                live.prior_cost = run.escalated_cost
                return live
        if (esc := run.escalation) is not None:
            chunks = completion_chunks(esc.error.completion)
            replayed = LiveStream(
                self,
                decision,
                ctx,
                esc.attempt,
                chunks,
                no_more_chunks(),
                run.failed_before(esc),
                request=request,
                billed_cost=esc.cost_usd,
            )
            replayed.prior_cost = run.escalated_cost - esc.cost_usd
            replayed.last_resort = esc.error
            return replayed
        raise run.exhausted()

    async def _open(
        self, run: _Run, candidate: RankedCandidate, request: ChatRequest, ctx: CallContext
    ) -> _Opened | None:
        """One stream attempt up to its first content, or None after a retryable failure."""
        provider = self.providers[candidate.card.deployment.name]
        if (attempt := await self._begin_or_skip(run, ctx, candidate)) is None:
            return None
        limit = run.timeout(self.limits.first_token_timeout_s)
        attempt.flight, token = enter_flight()
        chunks = provider.stream(request, candidate.card.upstream)
        try:
            head = await _within(self._until_content(chunks, attempt), limit, candidate)
        except LowConfidenceError as exc:
            await close_stream(chunks)
            await self._escalate(run, ctx, attempt, exc)
            return None
        except ModelyardError as exc:
            await close_stream(chunks)
            await self._failure(run.decision, ctx, attempt, exc)
            run.failed_with(candidate, exc)
            return None
        except BaseException as exc:
            await close_stream(chunks)
            await self._abandoned(run.decision, ctx, attempt, exc)
            raise
        finally:
            leave_flight(token)
        return _Opened(attempt, head, chunks)

    async def _failure(
        self, decision: Decision, ctx: CallContext, attempt: Attempt, exc: ModelyardError
    ) -> None:
        """Bill a failed attempt; re-raise it at once when it is not worth another try."""
        await self.bill(decision, ctx, attempt, Usage(), "error", exc)
        if not exc.retryable:
            raise exc

    async def _escalate(
        self, run: _Run, ctx: CallContext, attempt: Attempt, exc: LowConfidenceError
    ) -> None:
        """Bill a low-confidence answer as `escalated` and keep it as the last resort."""
        card = attempt.candidate.card
        usage, source = self._checked(run.decision, ctx, card, exc.completion)
        cost = await self.bill(
            run.decision, ctx, attempt, usage, "escalated", exc, exc.confidence, source=source
        )
        run.escalation = _Escalation(attempt, exc, cost)
        run.escalated_cost += cost
        run.failed.append(FailedAttempt(attempt.candidate.card.id, exc))

    async def _cancelled(
        self,
        decision: Decision,
        ctx: CallContext,
        attempt: Attempt,
        exc: BaseException | None = None,
    ) -> None:
        """A call abandoned mid-flight (hedge loser, client gone, deadline, or a bug of
        ours while it ran): providers bill a prompt they started on, so bill its
        estimated size and whatever it streamed, not zero."""
        card = attempt.candidate.card
        prompt = scale_for_family(decision.requirements.prompt_tokens, card.family)
        streamed = count_text("".join(attempt.streamed_text))
        usage = Usage(input_tokens=prompt, output_tokens=streamed)
        bug = exc if isinstance(exc, Exception) and not isinstance(exc, ModelyardError) else None
        if bug is not None:
            log.error("request %s: internal error during a provider call", ctx.request_id)
        await self.bill(decision, ctx, attempt, usage, "cancelled", None, source="estimated")

    async def _until_content(self, chunks: AsyncIterator[Chunk], attempt: Attempt) -> list[Chunk]:
        """Read chunks until the first with content (or the end); errors here fail over."""
        head: list[Chunk] = []
        async for chunk in chunks:
            head.append(chunk)
            if chunk.has_content or chunk.finish_reason or chunk.usage:
                attempt.ttft_ms = (self.monotonic() - attempt.t0) * 1000
                collect(attempt, chunk)
                return head
        raise ProviderResponseError(
            "stream ended before any content", provider=attempt.candidate.card.deployment.name
        )

    async def bill(
        self,
        decision: Decision,
        ctx: CallContext,
        attempt: Attempt,
        usage: Usage,
        status: AttemptStatus,
        error: ModelyardError | None,
        confidence: float | None = None,
        verifier_score: float | None = None,
        *,
        source: UsageSource = "reported",
    ) -> Money:
        """Complete the attempt's write-ahead record with its outcome (or write it, for
        an attempt that was not written ahead); shielded so a cancelled caller still
        gets billed. Usage that cannot be true is replaced by an estimate first."""
        card = attempt.candidate.card
        if source == "reported":
            completion = Completion("", card.upstream, "".join(attempt.streamed_text), usage=usage)
            usage, source = self._checked(decision, ctx, card, completion)
        # Completing a written-ahead record sets the outcome only: its reasons were
        # stored with it, so they are not built again.
        ahead = attempt.record_id is not None
        record = self.record_of(
            decision,
            ctx,
            attempt,
            usage,
            status,
            error,
            confidence,
            source,
            reasons=not ahead,
            verifier_score=verifier_score,
        )
        self._report_health(card.deployment.name, status, error)
        with anyio.CancelScope(shield=True):
            if ahead:
                await self.ledger.finish(record)
            else:
                attempt.record_id = record.id
                await self.ledger.write(record)
            if self.budgets is not None and ahead:
                await self.budgets.settle(record.id, record.cost_usd)
        if self.telemetry is not None:
            self.telemetry.attempt_billed(record)
        return record.cost_usd

    def record_of(
        self,
        decision: Decision,
        ctx: CallContext,
        attempt: Attempt,
        usage: Usage,
        status: AttemptStatus,
        error: ModelyardError | None,
        confidence: float | None,
        source: UsageSource = "reported",
        *,
        reasons: bool = True,
        verifier_score: float | None = None,
    ) -> CallRecord:
        """The ledger record of `attempt` (billing, decision, who spent it)."""
        card = attempt.candidate.card
        cost = usage.cost_usd if usage.cost_usd is not None else card.prices.cost(usage)
        who = ctx.principal
        return CallRecord(
            id=attempt.record_id or self.ids(),
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
            cost_usd=safe_cost(cost),
            error_class=type(error).__name__ if error else None,
            error_message=error.message[:500] if error else None,
            streamed=bool(attempt.streamed_text) or attempt.ttft_ms is not None,
            caller=ctx.caller,
            scorer_version=decision.scorer_version,
            reasons=decision.explain() if reasons else {},
            confidence=confidence,
            usage_source=source,
            step=ctx.step,
            role=ctx.role,
            verifier_score=verifier_score,
            key_id=who.key_id if who else None,
            team=who.team if who else None,
            tags=",".join(who.tags) if who and who.tags else None,
            budget_note=decision.budget_note,
            endpoint="embeddings" if decision.requirements.embedding is not None else None,
        )

    def served(
        self,
        decision: Decision,
        ctx: CallContext,
        request: ChatRequest,
        model_id: str,
        answer: str | None,
        cost: Money,
    ) -> None:
        """Tell the observer (shadowed specialists) about a served answer."""
        if self.observer is not None:
            self.observer.observe(
                task=decision.requirements.task,
                request=request,
                request_id=ctx.request_id,
                decision_id=decision.id,
                served_model=model_id,
                answer=answer,
                served_cost=cost,
            )

    async def capture(
        self,
        decision: Decision,
        ctx: CallContext,
        attempt: Attempt,
        request: ChatRequest,
        response: str | None,
    ) -> None:
        """Keep the prompt and answer of a billed, successful attempt when its task is
        captured (see the class docstring)."""
        task = decision.requirements.task
        if attempt.record_id is None or task is None:
            return
        if task not in self.capture_tasks and "*" not in self.capture_tasks:
            return
        exchange = Exchange(
            record_id=attempt.record_id,
            request_id=ctx.request_id,
            task=task,
            model_id=attempt.candidate.card.id,
            messages=[m.model_dump(mode="json", exclude_none=True) for m in request.messages],
            response=response,
            created_at=self.clock(),
        )
        with anyio.CancelScope(shield=True):
            await self.ledger.write_exchange(exchange)

    def _report_health(
        self, deployment: str, status: AttemptStatus, error: ModelyardError | None
    ) -> None:
        now = self.monotonic()
        # An escalation is a healthy deployment that answered, only not confidently.
        if status in ("ok", "escalated"):
            self.health.record_success(deployment, now)
        elif error is not None:
            self.health.record_failure(deployment, error, now)
        else:
            self.health.release(deployment)


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
    over_budget = [f.error for f in failed if isinstance(f.error, BudgetExceededError)]
    if over_budget and len(over_budget) == len(failed) and not skipped:
        return over_budget[-1]
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
