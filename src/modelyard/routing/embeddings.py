"""Planning an embeddings request: the router's own steps (resolve `model`, the
key's allowed models, the capability filter, the request's ceilings, the policy's
ranking, the budget fit), scored from the cards' priors and list prices.

Pure, like `Router.plan()`. A learned scorer predicts chat answer quality, so it
has nothing to say here; a cascade or council policy (several answers reconciled)
has no meaning for vectors and is refused with a 400.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from modelyard.budgets.fit import Allowance, fit_ranking
from modelyard.catalog.cards import ModelCard
from modelyard.catalog.filter import filter_candidates
from modelyard.catalog.tokens import scale_for_family
from modelyard.embed.request import EmbeddingRequest
from modelyard.errors import InvalidRequestError
from modelyard.routing.plan import Candidate, Decision, RankedCandidate, Rejection, Score
from modelyard.routing.policies import PlanContext
from modelyard.routing.router import Router, _allowed, _apply_ceilings
from modelyard.types import Requirements

SCORER_VERSION = "priors-v1"


def score_embeddings(req: Requirements, cards: Sequence[ModelCard]) -> list[Score]:
    """Quality from the card's prior; cost from its input price; latency its
    time-to-first-token prior (one round trip: no output to wait for)."""
    return [
        Score(
            quality=card.quality.for_task(req.task),
            expected_cost_usd=card.prices.estimate(
                scale_for_family(req.prompt_tokens, card.family), 0
            ),
            expected_latency_ms=card.latency.ttft_ms,
        )
        for card in cards
    ]


def plan_embeddings(
    router: Router,
    request: EmbeddingRequest,
    req: Requirements,
    rng: random.Random,
    unhealthy: Mapping[str, str] | None = None,
    allowance: Allowance | None = None,
) -> Decision:
    """Which embeddings models should serve `request`, in order, and why."""
    target = router.resolve(request)
    if getattr(target.policy, "plan_cascade", None) or getattr(target.policy, "plan_council", None):
        raise InvalidRequestError(
            f"policy '{target.name}' makes several calls per request and reconciles "
            "answers; embeddings need a single-call policy (cheapest, best, utility, fixed)",
            param="model",
        )
    pool, barred = _allowed(router._pool(target.policy), allowance)
    filtered = filter_candidates(pool, req, router.catalog, unhealthy)
    scores = score_embeddings(req, filtered.kept)
    scored = [Candidate(card, s) for card, s in zip(filtered.kept, scores, strict=True)]
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
        raise router._nothing_qualifies(pool, req, rejected)
    note: str | None = None
    if allowance is not None and allowance.remaining_usd is not None:
        fitted = fit_ranking([c.card for c, _ in ranking], req, allowance)
        rejected = (
            *rejected,
            *(Rejection(ranking[i][0].card.id, why) for i, why in fitted.dropped),
        )
        ranking = [ranking[i] for i in fitted.kept]
        note = fitted.note
    candidates = tuple(
        RankedCandidate(c.card, c.score, rank, why)
        for rank, (c, why) in enumerate(ranking, start=1)
    )
    return Decision(
        id=f"dec_{rng.getrandbits(96):024x}",
        policy=target.name,
        kind=target.policy.kind if len(candidates) > 1 else "single",
        candidates=candidates,
        rejected=rejected,
        requirements=req,
        scorer_version=SCORER_VERSION,
        budget_note=note,
    )
