"""The council runner: the executor's interpretation of a `council` decision.

Members answer in parallel (anyio), each falling back along its own ranked list on
retryable provider errors; every attempt is written ahead like any other. A member
whose every candidate failed is dropped and named; with fewer than two answers the
council does not answer (503, naming the failures). The answers are then assessed
(`agreement.assess`: a vote on final answers, else a claim map) and adjudicated:
`vote` serves the best-supported member's answer; an adjudicator model is prompted
with the members' answers and the claim map, asked to cite members, and its answer
is served. An adjudicator that fails falls back to the vote; one that cites nobody
is served with its claims linked to members by similarity, and flagged.

Billing: every attempt is one ledger record with the decision id, step 1 for the
members and 2 for the adjudicator, and a role: `answer` for the member whose answer
is served (vote), `member` for every other member attempt, `adjudicator` for the
adjudicator's calls. Answers are billed once the adjudication is done; a request
cancelled meanwhile bills them `cancelled` (members still running are abandoned and
billed `cancelled` by the executor). Disputed results (zone `disputed`, or no
citation) become review items in the ledger's database.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

import anyio

from modelyard.council.agreement import Agreement, Ballot, Zone, assess, claim_zone, key_of
from modelyard.council.claims import (
    Claim,
    ClaimMatcher,
    LazyMatcher,
    link_claims,
)
from modelyard.council.result import CouncilResult, MemberResult
from modelyard.council.reviews import Review, reviews_for
from modelyard.errors import (
    AllAttemptsFailedError,
    ModelyardError,
    ProviderError,
)
from modelyard.executor import Attempt, CallContext, Executor, Outcome
from modelyard.live_stream import LiveStream, completion_chunks, no_more_chunks
from modelyard.multicall import MultiCallRun
from modelyard.routing.plan import CouncilPlan, Decision, RankedCandidate, Score
from modelyard.types import ChatRequest, Completion, Message, Money

log = logging.getLogger(__name__)
_CITE = re.compile(r"\[(?:member\s*)?(\d+)\]", re.IGNORECASE)
_matchers: dict[str, ClaimMatcher] = {}


def matcher(kind: str = "auto") -> ClaimMatcher:
    """The claim matcher of that kind, shared by requests and built on first use."""
    if kind not in _matchers:
        _matchers[kind] = LazyMatcher(kind)
    return _matchers[kind]


@dataclass
class _Answer:
    """A member's answer, received and not yet billed (its role waits on the vote)."""

    slot: int
    attempt: Attempt
    completion: Completion

    @property
    def model_id(self) -> str:
        return self.attempt.candidate.card.id

    @property
    def text(self) -> str:
        return self.completion.content or ""


@dataclass(frozen=True, slots=True)
class _Served:
    completion: Completion
    attempt: Attempt
    ctx: CallContext


class _Council(MultiCallRun):
    """One request's council: members, assessment, adjudication, billing, review."""

    def __init__(
        self, ex: Executor, decision: Decision, request: ChatRequest, ctx: CallContext
    ) -> None:
        assert decision.council is not None
        super().__init__(ex, decision, request, ctx)
        self.plan: CouncilPlan = decision.council
        self.unbilled: list[_Answer] = []
        self.costs: dict[int, Money] = {}
        self.notes: list[str] = list(decision.notes)
        self.matcher = matcher(str(self.plan.settings.get("matcher", "auto")))

    def member_ctx(self, role: str = "member") -> CallContext:
        return dataclasses.replace(self.ctx, step=1, role=role)

    async def run(self) -> tuple[_Served, CouncilResult]:
        try:
            return await self._run()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.settle(list(self.unbilled), None, "cancelled")
            raise

    async def _run(self) -> tuple[_Served, CouncilResult]:
        answers = await self.members()
        if len(answers) < 2:
            await self.settle(answers, None, "ok")
            raise self.too_few(answers)
        extract = str(self.plan.settings.get("extract", "auto"))
        ballots = [
            Ballot(a.model_id, a.text, key_of(a.text, a.completion.parsed_answer, extract))
            for a in answers
        ]
        agreement = await anyio.to_thread.run_sync(
            assess, ballots, self.plan.min_agreement, self.matcher
        )
        for b in ballots:
            if b.key is None and agreement.method == "vote":
                self.notes.append(f"{b.model_id}: no extractable final answer (agrees with nobody)")
        served, result = await self.adjudicate(answers, ballots, agreement)
        result.members = self.member_results(answers, ballots)
        result.cost_usd = self.cost
        if result.needs_review:
            result.review_id = await self.file_review(result, served.completion)
        return served, result

    async def members(self) -> list[_Answer]:
        """Every member's answer, in slot order; a slot whose candidates all failed
        gives none. A non-retryable error (the caller's own) ends the request."""
        slots = self.plan.members.slots
        results: list[_Answer | None] = [None] * len(slots)
        fatal: list[ModelyardError] = []
        async with anyio.create_task_group() as tg:

            async def one(i: int, slot: tuple[RankedCandidate, ...]) -> None:
                try:
                    results[i] = await self.slot(i, slot)
                except ModelyardError as exc:
                    fatal.append(exc)
                    tg.cancel_scope.cancel()

            for i, slot in enumerate(slots):
                tg.start_soon(one, i, slot)
        if fatal:
            raise fatal[0]
        for i, got in enumerate(results):
            if got is None:
                self.notes.append(f"member {slots[i][0].card.id} dropped: no candidate answered")
        return [r for r in results if r is not None]

    async def slot(self, i: int, slot: tuple[RankedCandidate, ...]) -> _Answer | None:
        """The member's first answer, unbilled until the council is adjudicated."""
        got = await self.first_answer(slot, self.member_ctx())
        if got is None:
            return None
        answer = _Answer(i, *got)
        self.unbilled.append(answer)
        return answer

    async def settle(
        self, answers: list[_Answer], served: _Answer | None, status: str = "ok"
    ) -> None:
        """Bill received answers: the served one as `answer`, the others `member`."""
        for a in answers:
            if a in self.unbilled:
                self.unbilled.remove(a)
            role = "answer" if a is served else "member"
            cost = await self.ex.bill(
                self.decision,
                self.member_ctx(role),
                a.attempt,
                a.completion.usage,
                "ok" if status == "ok" else "cancelled",
                None,
                a.completion.confidence,
            )
            self.costs[a.slot] = cost
            self.cost += cost

    async def adjudicate(
        self, answers: list[_Answer], ballots: list[Ballot], agreement: Agreement
    ) -> tuple[_Served, CouncilResult]:
        pairs = [(a.model_id, a.text) for a in answers]
        n = len(answers)
        voted = agreement.method == "vote"
        member_claims = [
            (c, claim_zone(c, n, self.plan.min_agreement, voted=voted)) for c in agreement.claims
        ]
        if self.plan.adjudicator != "vote":
            adjudicated = await self.by_model(answers, agreement)
            if adjudicated is not None:
                served, cited, uncited = adjudicated
                text = served.completion.content or ""
                owner = served.attempt.candidate.card.id
                links = await anyio.to_thread.run_sync(
                    link_claims, text, pairs, self.matcher, owner
                )
                claims = [(c, claim_zone(c, n, self.plan.min_agreement)) for c in links]
                await self.settle(answers, None)
                result = self.result(agreement, owner, claims, member_claims, cited)
                if uncited:
                    result.notes.append(
                        "the adjudicator cited no member; claims linked by similarity"
                    )
                    result.review_reason = "the adjudicator cited no member"
                return served, result
        chosen = answers[agreement.winner]
        await self.settle(answers, chosen)
        if voted:
            # The served claim is the winning final answer, with its voters.
            claims = [(c, z) for c, z in member_claims if chosen.model_id in c.supporting]
        else:
            links = await anyio.to_thread.run_sync(
                link_claims, chosen.text, pairs, self.matcher, chosen.model_id
            )
            claims = [(c, claim_zone(c, n, self.plan.min_agreement)) for c in links]
        served = _Served(chosen.completion, chosen.attempt, self.member_ctx("answer"))
        return served, self.result(agreement, "vote", claims, member_claims, ())

    def result(
        self,
        agreement: Agreement,
        by: str,
        claims: list[tuple[Claim, Zone]],
        member_claims: list[tuple[Claim, Zone]],
        cited: tuple[str, ...],
    ) -> CouncilResult:
        return CouncilResult(
            members=[],
            adjudicator=self.plan.adjudicator,
            adjudicated_by=by,
            method=agreement.method,
            agreement=agreement.score,
            zone=agreement.zone,
            votes=agreement.votes,
            claims=claims,
            member_claims=member_claims,
            cited=cited,
            cost_usd=self.cost,
            reason=agreement.reason,
            notes=self.notes,
        )

    async def by_model(
        self, answers: list[_Answer], agreement: Agreement
    ) -> tuple[_Served, tuple[str, ...], bool] | None:
        """The adjudicator's answer, the members it cited and whether it cited none;
        None when it could not answer (the vote decides instead, with a note)."""
        request = adjudication_request(self.request, self.plan.adjudicator, answers, agreement)
        ctx = dataclasses.replace(self.ctx, step=2, role="adjudicator")
        try:
            if self.ex.planner is None:
                raise RuntimeError("no router to plan the adjudicator's call")
            planned = self.ex.planner(request)
            if planned.cascade is not None or planned.council is not None:
                raise ValueError(f"the adjudicator '{self.plan.adjudicator}' is not one call")
            planned = dataclasses.replace(planned, id=self.decision.id)
            outcome = await self.ex.complete(planned, request, ctx)
        except (ModelyardError, ValueError, RuntimeError) as exc:
            message = exc.message if isinstance(exc, ModelyardError) else str(exc)
            self.notes.append(f"adjudicator {self.plan.adjudicator} failed ({message}); vote used")
            log.warning("council %s: adjudicator failed: %s", self.decision.id, message)
            return None
        self.cost += outcome.cost_usd
        self.failed += outcome.failed
        cited = citations(outcome.completion.content or "", [a.model_id for a in answers])
        candidate = RankedCandidate(outcome.card, Score(0.0, Decimal(0), 0.0), 1, "adjudicator")
        attempt = Attempt(candidate, 0, self.ex.clock(), self.ex.monotonic())
        return _Served(outcome.completion, attempt, ctx), cited, not cited

    def member_results(self, answers: list[_Answer], ballots: list[Ballot]) -> list[MemberResult]:
        by_slot = {a.slot: (a, b) for a, b in zip(answers, ballots, strict=True)}
        out: list[MemberResult] = []
        for i, slot in enumerate(self.plan.members.slots):
            if i in by_slot:
                a, b = by_slot[i]
                out.append(MemberResult(a.model_id, "answered", a.text, b.key, self.costs[i]))
                continue
            tried = {c.card.id for c in slot}
            errors = [
                f"{f.model_id}: {f.error.message}" for f in self.failed if f.model_id in tried
            ]
            out.append(
                MemberResult(slot[0].card.id, "failed", None, None, Decimal(0), "; ".join(errors))
            )
        return out

    async def file_review(self, result: CouncilResult, completion: Completion) -> str:
        """A review item for a flagged result, committed before the caller is answered."""
        review_id = f"rev_{self.ex.ids()}"
        review = Review(
            id=review_id,
            request_id=self.ctx.request_id,
            decision_id=self.decision.id,
            policy=self.decision.policy,
            status="pending",
            request=self.request.model_dump(mode="json", exclude_none=True),
            members=[m.to_json() for m in result.members],
            claims=[c.to_json(z) for c, z in result.member_claims],
            answer=completion.content,
            agreement=result.agreement,
            reason="; ".join(r for r in (result.reason, result.review_reason) if r),
            cost_usd=result.cost_usd,
            created_at=self.ex.clock(),
        )
        with anyio.CancelScope(shield=True):
            await reviews_for(self.ex.ledger).add(review)
        return review_id

    def too_few(self, answers: list[_Answer]) -> ModelyardError:
        tried = "; ".join(
            [*(f"{f.model_id}: {f.error.message}" for f in self.failed), *self.skipped]
        )
        errors = [(f.model_id, f.error) for f in self.failed if isinstance(f.error, ProviderError)]
        got = ", ".join(a.model_id for a in answers) or "none"
        return AllAttemptsFailedError(
            f"the council needs two answers, {len(answers)} member(s) answered ({got}); "
            f"failed: {tried or 'nothing'}",
            errors,
        )


def citations(text: str, members: list[str]) -> tuple[str, ...]:
    """The members an adjudicator's text cites, as `[1]` / `[member 2]` or by model id."""
    cited: list[str] = []
    for m in _CITE.finditer(text):
        n = int(m.group(1))
        if 1 <= n <= len(members) and members[n - 1] not in cited:
            cited.append(members[n - 1])
    for model in members:
        if model not in cited and re.search(rf"\[{re.escape(model)}\]", text):
            cited.append(model)
    return tuple(cited)


def adjudication_request(
    request: ChatRequest, adjudicator: str, answers: list[_Answer], agreement: Agreement
) -> ChatRequest:
    """The adjudicator's prompt: the question, each member's numbered answer, the
    claim map, and the instruction to answer citing members as [n]."""
    question = "\n".join(
        f"{m.role}: {m.content}" for m in request.messages if isinstance(m.content, str)
    )
    numbered = {a.model_id: i for i, a in enumerate(answers, start=1)}
    members = "\n\n".join(f"[{i}] {a.text}" for i, a in enumerate(answers, start=1))
    claims = "\n".join(
        f"- {c.text} (supported by {', '.join(f'[{numbered[m]}]' for m in c.supporting)}"
        + (
            f"; contradicted by {', '.join(f'[{numbered[m]}]' for m in c.contradicting)}"
            if c.contradicting
            else ""
        )
        + ")"
        for c in agreement.claims
    )
    prompt = (
        "Several assistants answered the same request. Reconcile their answers into one "
        "correct answer, weighing agreement and evidence. Cite the assistants that support "
        "each claim as [n].\n\n"
        f"Request:\n{question}\n\nAnswers:\n{members}\n\nClaims:\n{claims or '(none)'}"
    )
    return ChatRequest(
        model=adjudicator,
        messages=[Message(role="user", content=prompt)],
        max_tokens=request.max_tokens,
    )


async def run_council(
    ex: Executor, decision: Decision, request: ChatRequest, ctx: CallContext
) -> Outcome:
    """Run a council decision to its adjudicated answer; the cost is every call's."""
    council = _Council(ex, decision, request, ctx)
    served, result = await council.run()
    card = served.attempt.candidate.card
    return Outcome(served.completion, card, council.cost, tuple(council.failed), council=result)


async def stream_council(
    ex: Executor, decision: Decision, request: ChatRequest, ctx: CallContext
) -> LiveStream:
    """A council as a stream: the adjudicated answer, replayed as chunks once it
    exists (members are never streamed to the caller)."""
    council = _Council(ex, decision, request, ctx)
    served, result = await council.run()
    live = LiveStream(
        ex,
        decision,
        served.ctx,
        served.attempt,
        completion_chunks(served.completion),
        no_more_chunks(),
        tuple(council.failed),
        request=request,
        billed_cost=council.cost,
    )
    live.council = result
    return live
