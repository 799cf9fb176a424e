"""The router: requirements → capability filter → scorer → policy → Decision.

`Router.plan()` is pure: no I/O, randomness only from the `rng` it is given.
The same request, catalog and rng state give the same decision.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace

from modelyard.budgets.fit import Allowance, fit_ranking
from modelyard.catalog.cards import ModelCard
from modelyard.catalog.catalog import Catalog
from modelyard.catalog.filter import filter_candidates, unmet
from modelyard.errors import (
    ContextLengthError,
    ModelNotFoundError,
    NoQualifiedModelError,
    ServiceUnavailableError,
)
from modelyard.routing.plan import Candidate, Decision, RankedCandidate, Rejection
from modelyard.routing.policies import FixedPolicy, PlanContext, Policy
from modelyard.routing.requirements import infer_requirements
from modelyard.routing.scorers import Scorer
from modelyard.types import ChatRequest, Requirements, Routed

AUTO = "auto"


@dataclass(frozen=True, slots=True)
class Target:
    """What the request's `model` field resolved to: a policy, by name."""

    name: str
    policy: Policy


class Router:
    """Plans requests against one catalog with named policies and a scorer."""

    def __init__(
        self,
        catalog: Catalog,
        policies: Mapping[str, Policy],
        default_policy: str,
        scorer: Scorer,
    ) -> None:
        self.catalog = catalog
        self.policies = dict(policies)
        self.default_policy = default_policy
        self.scorer = scorer

    def resolve(self, request: Routed) -> Target:
        """`auto`, a policy name, an alias or a model id → the policy to plan with."""
        name = request.modelyard.policy or request.model
        if name == AUTO:
            name = self.default_policy
        if name in self.policies:
            return Target(name, self.policies[name])
        card = self.catalog.resolve(name)
        if card is not None:
            return Target(name, FixedPolicy(FixedPolicy.Settings(model=card.id)))
        known = sorted({AUTO, *self.policies, *self.catalog.aliases, *self.catalog.cards})
        raise ModelNotFoundError(
            f"unknown model '{name}': use 'auto', a policy, an alias or a model id "
            f"({', '.join(known)})",
            param="model",
        )

    def plan(
        self,
        request: ChatRequest,
        rng: random.Random,
        unhealthy: Mapping[str, str] | None = None,
        allowance: Allowance | None = None,
    ) -> Decision:
        """Decide which models should answer `request`, in order, and why.

        `unhealthy` (deployment → reason) is the health snapshot to plan against;
        `allowance` the caller's snapshot (allowed models, budget headroom): a
        first choice that does not fit is downgraded (see `budgets.fit`).
        """
        target = self.resolve(request)
        req = self._implied_task(infer_requirements(request), target.policy)
        pool, barred = _allowed(self._pool(target.policy), allowance)
        filtered = filter_candidates(pool, req, self.catalog, unhealthy)
        scored = self._score(request, req, filtered.kept)
        within, over = _apply_ceilings(scored, req)
        ctx = PlanContext(target.name, request, req, tuple(within), rng)
        ranking, dropped = target.policy.rank(ctx)
        rejected = (
            *barred,
            *(Rejection(m, r) for m, r in filtered.rejected),
            *over,
            *dropped,
        )
        if not ranking:
            raise self._nothing_qualifies(pool, req, rejected)
        note: str | None = None
        cap: int | None = None
        if allowance is not None and allowance.remaining_usd is not None:
            fitted = fit_ranking([c.card for c, _ in ranking], req, allowance)
            rejected = (
                *rejected,
                *(Rejection(ranking[i][0].card.id, why) for i, why in fitted.dropped),
            )
            ranking = [ranking[i] for i in fitted.kept]
            note, cap = fitted.note, fitted.cap
            if cap is not None:
                req = replace(req, max_output_tokens=cap)
        candidates = tuple(
            RankedCandidate(c.card, c.score, rank, why)
            for rank, (c, why) in enumerate(ranking, start=1)
        )
        # A cascade's steps are built over the same qualified candidates; a tier
        # none of whose models qualified is skipped with their reasons.
        plan_cascade = getattr(target.policy, "plan_cascade", None)
        cascade, notes = (
            (None, [])
            if plan_cascade is None
            else plan_cascade(candidates, {r.model_id: r.reason for r in rejected})
        )
        # A council's members are chosen from the same qualified candidates; fewer
        # than two members degrades it to a single route (kind single/fallback).
        plan_council = getattr(target.policy, "plan_council", None)
        council = None
        if plan_council is not None:
            council, council_notes = plan_council(
                candidates, {r.model_id: r.reason for r in rejected}, req
            )
            notes = [*notes, *council_notes]
        kind = target.policy.kind if len(ranking) > 1 else "single"
        if council is None and kind == "council":
            kind = "fallback"
        return Decision(
            id=f"dec_{rng.getrandbits(96):024x}",
            policy=target.name,
            kind="cascade" if cascade else kind,
            candidates=candidates,
            rejected=rejected,
            requirements=req,
            scorer_version=self.scorer.version,
            notes=tuple(notes),
            hedge_after_ms=None
            if cascade
            else getattr(getattr(target.policy, "settings", None), "hedge_after_ms", None),
            cascade=cascade,
            budget_note=note,
            capped_max_tokens=cap,
            council=council,
        )

    def _implied_task(self, req: Requirements, policy: Policy) -> Requirements:
        """Naming a task-bound model (a specialist), directly or by a fixed policy,
        declares its task: the caller asked for that classifier, so they need not
        repeat the task hint. An explicit, different task still disqualifies it."""
        if req.task is not None or not isinstance(policy, FixedPolicy):
            return req
        card = self.catalog.cards.get(policy.settings.model)
        if card is None or card.task is None:
            return req
        return replace(req, task=card.task)

    def _pool(self, policy: Policy) -> list[ModelCard]:
        if isinstance(policy, FixedPolicy):
            return [self.catalog.cards[m] for m in policy.wanted() if m in self.catalog.cards]
        return list(self.catalog.cards.values())

    def _score(
        self, request: ChatRequest, req: Requirements, cards: tuple[ModelCard, ...]
    ) -> list[Candidate]:
        scores = self.scorer.score(request, req, cards)
        return [Candidate(card, score) for card, score in zip(cards, scores, strict=True)]

    def _nothing_qualifies(
        self,
        pool: list[ModelCard],
        req: Requirements,
        rejected: tuple[Rejection, ...],
    ) -> Exception:
        capable = [c for c in pool if unmet(c, req) is None]
        reasons = {r.model_id: r.reason for r in rejected}
        if capable and all(not self.catalog.is_available(c) for c in capable):
            keys = sorted({c.deployment.api_key_env or c.deployment.name for c in capable})
            return ServiceUnavailableError(
                "no enabled provider can serve this request; set "
                + " or ".join(keys)
                + " (models that would qualify: "
                + ", ".join(c.id for c in capable)
                + ")"
            )
        if capable and all(reasons.get(c.id, "").startswith("deployment ") for c in capable):
            return ServiceUnavailableError(
                "every qualified model is unavailable right now: "
                + "; ".join(f"{c.id}: {reasons[c.id]}" for c in capable)
            )
        nobody = sorted(
            cap.value for cap in req.capabilities if not any(cap in c.capabilities for c in pool)
        )
        if nobody:
            summary = "no model in the catalog supports " + ", ".join(nobody)
        elif pool and all("context window" in reasons.get(c.id, "") for c in pool):
            return ContextLengthError(
                f"the prompt (~{req.prompt_tokens} tokens) plus the output reserve fits no "
                "model's context window: " + "; ".join(f"{m}: {r}" for m, r in reasons.items()),
                param="messages",
            )
        else:
            summary = "no model meets this request's requirements"
        detail = "; ".join(f"{m}: {r}" for m, r in reasons.items())
        return NoQualifiedModelError(f"{summary} ({detail})", reasons=reasons)


def _allowed(
    pool: list[ModelCard], allowance: Allowance | None
) -> tuple[list[ModelCard], list[Rejection]]:
    """The pool without the models the caller's key may not use."""
    if allowance is None or not allowance.models:
        return pool, []
    barred = [
        Rejection(c.id, f"not allowed for key '{allowance.key_name}'")
        for c in pool
        if not allowance.allows(c.id)
    ]
    return [c for c in pool if allowance.allows(c.id)], barred


def _hedge_after_ms(policy: Policy) -> float | None:
    settings = getattr(policy, "settings", None)
    value = getattr(settings, "hedge_after_ms", None)
    return float(value) if value is not None else None


def _apply_ceilings(
    scored: list[Candidate], req: Requirements
) -> tuple[list[Candidate], list[Rejection]]:
    """Drop candidates whose expected cost or latency breaks the request's ceiling."""
    within: list[Candidate] = []
    over: list[Rejection] = []
    for c in scored:
        if req.max_cost_usd is not None and c.score.expected_cost_usd > req.max_cost_usd:
            over.append(
                Rejection(
                    c.card.id,
                    f"expected cost ${c.score.expected_cost_usd:.6f} exceeds "
                    f"max_cost_usd {req.max_cost_usd}",
                )
            )
        elif req.max_latency_ms is not None and c.score.expected_latency_ms > req.max_latency_ms:
            over.append(
                Rejection(
                    c.card.id,
                    f"expected latency {c.score.expected_latency_ms:.0f} ms exceeds "
                    f"max_latency_ms {req.max_latency_ms}",
                )
            )
        else:
            within.append(c)
    return within, over
