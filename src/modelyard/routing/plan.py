"""Decisions: what the router decided for one request, and why.

A `Decision` is data. The executor interprets it; the ledger stores its
`explain()` next to every attempt; `/v1/route` returns it without calling a model.
Plan kinds: `single` (one model, no fallback), `fallback` (an ordered list of
qualified models, tried in turn on retryable failures) and `cascade` (steps run one
after another until a verifier accepts a step's answer; each step is one or more
slots answering in parallel, each slot a ranked list with its own fallback) and
`council` (one step of members answering in parallel, each slot with its own
fallback, then an adjudication: a vote or an adjudicator model; `CouncilPlan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from modelyard.catalog.cards import ModelCard
from modelyard.types import Requirements

if TYPE_CHECKING:
    from modelyard.verifiers.base import Verifier

PlanKind = Literal["single", "fallback", "cascade", "council"]


@dataclass(frozen=True, slots=True)
class Score:
    """A scorer's prediction for one model on one request."""

    quality: float
    expected_cost_usd: Decimal
    expected_latency_ms: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model that passed the filter, with its score."""

    card: ModelCard
    score: Score


@dataclass(frozen=True, slots=True)
class RankedCandidate:
    """A candidate in the decision's order, with the reason for its place."""

    card: ModelCard
    score: Score
    rank: int
    reason: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A model that was not considered, and why."""

    model_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Step:
    """One hop of a cascade: `slots` answer in parallel (one slot: a plain hop); each
    slot is a ranked list of qualified candidates, the later ones its fallback."""

    number: int
    tier: int
    slots: tuple[tuple[RankedCandidate, ...], ...]

    @property
    def label(self) -> str:
        """The hop's primary models, `+`-joined when it answers in parallel."""
        return "+".join(slot[0].card.id for slot in self.slots)


@dataclass(frozen=True, slots=True)
class CascadePlan:
    """The steps of a cascade, in order, and the verifier that judges each step's
    answers (the last step's answer is served without a verdict: nothing is left to
    escalate to). `verifier_settings` describes the verifier for explanations."""

    steps: tuple[Step, ...]
    verifier: Verifier
    verifier_settings: dict[str, Any]
    max_hops: int

    def explain(self) -> dict[str, Any]:
        return {
            "verifier": self.verifier_settings,
            "max_hops": self.max_hops,
            "steps": [
                {
                    "step": step.number,
                    "tier": step.tier,
                    "parallel": len(step.slots) > 1,
                    "slots": [[c.card.id for c in slot] for slot in step.slots],
                }
                for step in self.steps
            ],
        }


@dataclass(frozen=True, slots=True)
class CouncilPlan:
    """A council: `members` answer in parallel (one `Step`, each slot a member with its
    own fallback), then `adjudicator` reconciles them: `vote` (no model call) or a
    model, alias or policy routed like any call. Below `min_agreement` the answer is
    flagged for review. `settings` describes the council for explanations."""

    members: Step
    adjudicator: str
    min_agreement: float
    settings: dict[str, Any]

    def explain(self) -> dict[str, Any]:
        return {
            **self.settings,
            "planned_members": [[c.card.id for c in slot] for slot in self.members.slots],
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The router's answer: ordered candidates (first = primary), and everything dropped."""

    id: str
    policy: str
    kind: PlanKind
    candidates: tuple[RankedCandidate, ...]
    rejected: tuple[Rejection, ...]
    requirements: Requirements
    scorer_version: str
    notes: tuple[str, ...] = field(default=())
    hedge_after_ms: float | None = None
    cascade: CascadePlan | None = None
    # Issue 12: why the plan was downgraded or capped to fit a budget, and the cap.
    budget_note: str | None = None
    capped_max_tokens: int | None = None
    council: CouncilPlan | None = None

    def explain(self) -> dict[str, Any]:
        """JSON-ready reasons: returned by /v1/route and stored on every ledger record."""
        out = self._explain()
        if self.budget_note is not None:
            out["budget_note"] = self.budget_note
        return out

    def _explain(self) -> dict[str, Any]:
        req = self.requirements
        requirements: dict[str, Any] = {
            "capabilities": sorted(c.value for c in req.capabilities),
            "prompt_tokens": req.prompt_tokens,
            "max_output_tokens": req.max_output_tokens,
            "data_class": req.data_class.value,
            "max_cost_usd": None if req.max_cost_usd is None else str(req.max_cost_usd),
            "max_latency_ms": req.max_latency_ms,
            "task": req.task,
        }
        if req.embedding is not None:
            requirements["embedding"] = {
                "dimensions": req.embedding.dimensions,
                "inputs": req.embedding.inputs,
                "longest_input_tokens": req.embedding.longest_input_tokens,
                "token_ids": req.embedding.token_ids,
            }
        explained = {
            "decision_id": self.id,
            "policy": self.policy,
            "kind": self.kind,
            "scorer": self.scorer_version,
            "requirements": requirements,
            "candidates": [
                {
                    "rank": c.rank,
                    "model": c.card.id,
                    "deployment": c.card.deployment.name,
                    "quality": round(c.score.quality, 4),
                    "expected_cost_usd": f"{c.score.expected_cost_usd:.9f}",
                    "expected_latency_ms": round(c.score.expected_latency_ms, 1),
                    "reason": c.reason,
                }
                for c in self.candidates
            ],
            "rejected": [{"model": r.model_id, "reason": r.reason} for r in self.rejected],
            "notes": list(self.notes),
            "hedge_after_ms": self.hedge_after_ms,
        }
        if self.cascade is not None:
            explained["cascade"] = self.cascade.explain()
        if self.council is not None:
            explained["council"] = self.council.explain()
        return explained
