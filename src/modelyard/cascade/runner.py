"""The cascade runner: the executor's interpretation of a `cascade` decision.

Step after step: each step's slots answer (in parallel when there are several),
each slot falling back along its own ranked list on retryable provider errors; the
verifier judges the step's answers; an accepted answer is served, a rejected step
escalates to the next. The last step's answer is served without a verdict (nothing
is left to escalate to; a parallel last step still asks the verifier which of its
answers to serve). A step whose every slot failed escalates too.

Billing: every attempt is one ledger record with the decision id, its step and its
role: `answer` for the one answer the caller was served, `candidate` for every other
attempt at an answer (rejected, a parallel member not chosen, failed, cancelled),
`judge` for a judge's calls. An answer is billed once its fate is known: `ok` when
its step was accepted or served, `escalated` (with the verifier's score and reason)
when it was rejected; a request cancelled meanwhile bills what it
received as `cancelled`, with the provider's real usage. The caller's cost is the
sum of all of it. A verifier that raises is a rejection, logged, never a 500.

Streaming holds back: earlier steps run to completion and are verified before a
byte is sent, so the caller never sees a rejected answer. The last step, having no
verdict to wait for, streams directly when it is a single slot.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import anyio

from modelyard.cascade.trace import CascadeTrace, HopTrace, HopVerdict
from modelyard.errors import (
    AllAttemptsFailedError,
    AnswerRejectedError,
    ModelyardError,
    ProviderError,
)
from modelyard.executor import (
    Attempt,
    CallContext,
    Executor,
    Outcome,
)
from modelyard.ledger.records import AttemptStatus
from modelyard.live_stream import LiveStream, completion_chunks, no_more_chunks
from modelyard.multicall import MultiCallRun
from modelyard.routing.plan import CascadePlan, Decision, RankedCandidate, Step
from modelyard.types import ChatRequest
from modelyard.verifiers.base import Answer, JudgeReply, Verdict, VerifyContext

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    """An answer received and not yet billed (its fate waits on the verdict)."""

    attempt: Attempt
    answer: Answer


@dataclass(frozen=True, slots=True)
class _Served:
    """The answer to serve, and the trace so far."""

    pending: _Pending
    step: Step


class _Cascade(MultiCallRun):
    """One request's walk down a cascade's steps."""

    def __init__(
        self, ex: Executor, decision: Decision, request: ChatRequest, ctx: CallContext
    ) -> None:
        assert decision.cascade is not None
        super().__init__(ex, decision, request, ctx)
        self.plan: CascadePlan = decision.cascade
        self.hops: list[HopTrace] = []
        self.earlier: list[Answer] = []
        self.unbilled: list[_Pending] = []

    def step_ctx(self, step: Step, role: str = "candidate") -> CallContext:
        return dataclasses.replace(self.ctx, step=step.number, role=role)

    def trace(self) -> CascadeTrace:
        return CascadeTrace(tuple(self.hops), self.cost)

    async def walk(self, *, stream_last: bool) -> _Served | Step:
        """Run steps until one is accepted (or the last answers): the answer to
        serve, or, with `stream_last`, the single-slot last step left to stream."""
        try:
            return await self._walk(stream_last)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.settle(list(self.unbilled), "cancelled", None, None)
            raise

    async def _walk(self, stream_last: bool) -> _Served | Step:
        steps = self.plan.steps
        for step in steps:
            last = step is steps[-1]
            if last and stream_last and len(step.slots) == 1:
                return step
            answers = await self.hop(step)
            if not answers:
                self.hops.append(HopTrace(step.number, _tried(step), "failed", None, "no answer"))
                continue
            verdict = await self.verdict(step, answers) if not last or len(answers) > 1 else None
            if last or (verdict is not None and verdict.accepted):
                kind: HopVerdict = "accepted" if verdict and verdict.accepted else "final"
                return await self.serve(step, answers, verdict, kind)
            assert verdict is not None
            await self.escalate(step, answers, verdict)
        raise self.exhausted()

    async def serve(
        self, step: Step, answers: list[_Pending], verdict: Verdict | None, kind: HopVerdict
    ) -> _Served:
        score = verdict.score if verdict else None
        reason = verdict.reason if verdict else "last step: served without a verdict"
        chosen = answers[verdict.chosen if verdict and verdict.chosen < len(answers) else 0]
        await self.settle(answers, "ok", score, None, served=chosen)
        ctx = self.step_ctx(step, "answer")
        completion = chosen.answer.completion
        await self.ex.capture(self.decision, ctx, chosen.attempt, self.request, completion.content)
        self.hops.append(HopTrace(step.number, _models(answers), kind, score, reason))
        return _Served(chosen, step)

    async def escalate(self, step: Step, answers: list[_Pending], verdict: Verdict) -> None:
        rejection = AnswerRejectedError(f"rejected by the verifier: {verdict.reason}")
        await self.settle(answers, "escalated", verdict.score, rejection)
        self.hops.append(
            HopTrace(step.number, _models(answers), "rejected", verdict.score, verdict.reason)
        )
        self.earlier += [p.answer for p in answers]

    async def settle(
        self,
        answers: list[_Pending],
        status: AttemptStatus,
        score: float | None,
        error: ModelyardError | None,
        *,
        served: _Pending | None = None,
    ) -> None:
        """Bill received answers now that their fate is known; `served` is the one the
        caller gets (role `answer`), the others are `candidate`s."""
        for p in answers:
            if p in self.unbilled:
                self.unbilled.remove(p)
            completion = p.answer.completion
            role = "answer" if p is served else "candidate"
            ctx = dataclasses.replace(self.ctx, step=p.answer.step, role=role)
            self.cost += await self.ex.bill(
                self.decision,
                ctx,
                p.attempt,
                completion.usage,
                status,
                error,
                completion.confidence,
                verifier_score=score,
            )

    async def hop(self, step: Step) -> list[_Pending]:
        """The step's answers in slot order (slots in parallel); a slot whose every
        candidate failed gives none. A non-retryable error ends the request."""
        if len(step.slots) == 1:
            only = await self.slot(step, step.slots[0])
            return [only] if only is not None else []
        results: list[_Pending | None] = [None] * len(step.slots)
        fatal: list[ModelyardError] = []
        async with anyio.create_task_group() as tg:

            async def one(i: int, slot: tuple[RankedCandidate, ...]) -> None:
                try:
                    results[i] = await self.slot(step, slot)
                except ModelyardError as exc:
                    fatal.append(exc)
                    tg.cancel_scope.cancel()

            for i, slot in enumerate(step.slots):
                tg.start_soon(one, i, slot)
        if fatal:
            raise fatal[0]
        return [r for r in results if r is not None]

    async def slot(self, step: Step, slot: tuple[RankedCandidate, ...]) -> _Pending | None:
        """The slot's first answer, unbilled until its fate is known."""
        got = await self.first_answer(slot, self.step_ctx(step))
        if got is None:
            return None
        attempt, completion = got
        pending = _Pending(attempt, Answer(attempt.candidate.card.id, step.number, completion))
        self.unbilled.append(pending)
        return pending

    async def verdict(self, step: Step, answers: list[_Pending]) -> Verdict:
        """The verifier's verdict; a verifier that raises rejects, with its error."""
        vctx = VerifyContext(
            request=self.request,
            step=step.number,
            answers=tuple(p.answer for p in answers),
            earlier=tuple(self.earlier),
            call=lambda judged: self.judge(step, judged),
        )
        name = self.plan.verifier_settings.get("type", "verifier")
        try:
            return await self.plan.verifier.verify(vctx)
        except Exception as exc:  # any verifier bug or judge failure: reject, never a 500
            log.warning(
                "cascade %s step %d: verifier %s raised",
                self.decision.id,
                step.number,
                name,
                exc_info=True,
            )
            return Verdict(False, None, f"verifier {name} raised {type(exc).__name__}: {exc}")

    async def judge(self, step: Step, request: ChatRequest) -> JudgeReply:
        """A verifier's own model call: routed by the engine's router, billed under this
        decision's id with this step and the role `judge`."""
        if self.ex.planner is None:
            raise RuntimeError("no router to plan the judge's call")
        planned = self.ex.planner(request)
        if planned.cascade is not None:
            raise ValueError(f"the judge's model '{request.model}' is a cascade")
        planned = dataclasses.replace(planned, id=self.decision.id)
        outcome = await self.ex.complete(planned, request, self.step_ctx(step, "judge"))
        self.cost += outcome.cost_usd
        self.failed += outcome.failed
        return JudgeReply(outcome.completion, outcome.card.id, outcome.cost_usd)

    def exhausted(self) -> ModelyardError:
        tried = "; ".join(
            [*(f"{f.model_id}: {f.error.message}" for f in self.failed), *self.skipped]
        )
        errors = [(f.model_id, f.error) for f in self.failed if isinstance(f.error, ProviderError)]
        hops = ", ".join(f"{h.step}:{'+'.join(h.models)}={h.verdict}" for h in self.hops)
        return AllAttemptsFailedError(
            f"no cascade step could answer (hops {hops}; tried {tried or 'nothing'})", errors
        )


def _models(answers: list[_Pending]) -> tuple[str, ...]:
    return tuple(p.answer.model_id for p in answers)


def _tried(step: Step) -> tuple[str, ...]:
    return tuple(slot[0].card.id for slot in step.slots)


async def run_cascade(
    ex: Executor, decision: Decision, request: ChatRequest, ctx: CallContext
) -> Outcome:
    """Run a cascade decision to its served answer; the cost is every hop's."""
    cascade = _Cascade(ex, decision, request, ctx)
    served = await cascade.walk(stream_last=False)
    assert isinstance(served, _Served)
    p = served.pending
    card = p.attempt.candidate.card
    return Outcome(p.answer.completion, card, cascade.cost, tuple(cascade.failed), cascade.trace())


async def stream_cascade(
    ex: Executor, decision: Decision, request: ChatRequest, ctx: CallContext
) -> LiveStream:
    """A cascade as a stream: accepted answers replayed as chunks once verified; a
    single-slot last step streamed directly."""
    cascade = _Cascade(ex, decision, request, ctx)
    served = await cascade.walk(stream_last=True)
    if isinstance(served, _Served):
        p = served.pending
        live = LiveStream(
            ex,
            decision,
            cascade.step_ctx(served.step, "answer"),
            p.attempt,
            completion_chunks(p.answer.completion),
            no_more_chunks(),
            tuple(cascade.failed),
            request=request,
            billed_cost=cascade.cost,
        )
        live.cascade = cascade.trace()
        return live
    step = served
    note = f"cascade step {step.number} of {len(cascade.plan.steps)}: streamed directly"
    last = dataclasses.replace(
        decision,
        kind="fallback" if len(step.slots[0]) > 1 else "single",
        candidates=step.slots[0],
        cascade=None,
        notes=(*decision.notes, note),
    )
    live = await ex.stream(last, request, cascade.step_ctx(step, "answer"))
    live.failed = (*cascade.failed, *live.failed)
    cascade.hops.append(HopTrace(step.number, (live.card.id,), "streamed", None, note))
    live.cascade = cascade.trace()
    return live
