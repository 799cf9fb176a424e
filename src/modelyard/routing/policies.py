"""Built-in policies: each orders the qualified, scored candidates and says why.

A policy never sees a model that failed the filter or a request ceiling; the
router applies those first. Its ranking is also the fallback order. Policies are
registered under the `modelyard.policies` entry-point group and configured with
their own strict `Settings` model::

    policies:
      auto: {type: utility, lambda_cost: 50, mu_latency: 0.01}
      cheap: {type: cheapest, min_quality: 0.7}
      coder: {type: fixed, model: anthropic/claude-sonnet-4-5}
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from modelyard.routing.plan import Candidate, PlanKind, Rejection
from modelyard.types import ChatRequest, Requirements

if TYPE_CHECKING:
    from modelyard.embed.request import EmbeddingRequest

Ranking = list[tuple[Candidate, str]]


@dataclass(frozen=True, slots=True)
class PlanContext:
    """Everything a policy may look at. No I/O handles: planning is pure."""

    policy_name: str
    # An embeddings request has no messages: a policy that reads the request must
    # check which kind it got.
    request: ChatRequest | EmbeddingRequest
    requirements: Requirements
    candidates: tuple[Candidate, ...]
    rng: random.Random


class Policy(Protocol):
    """Orders candidates. `rank` returns (candidate, reason) best first; it may
    drop candidates by returning them as rejections. Each policy class also has a
    strict pydantic `Settings` model that the registry validates config with."""

    kind: PlanKind

    def rank(self, ctx: PlanContext) -> tuple[Ranking, list[Rejection]]: ...


class _Settings(BaseModel):
    """Settings every policy has. `hedge_after_ms`: if the first choice has not
    answered by then, start the next candidate too and take whichever answers first."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hedge_after_ms: float | None = Field(default=None, gt=0)


def _cost(c: Candidate) -> str:
    return f"${c.score.expected_cost_usd:.6f}"


class CheapestPolicy:
    """The cheapest qualified model (optionally above a quality floor) first.

    When no candidate is predicted to reach the floor, `below_floor` decides: `best`
    (the default) serves the best-predicted candidates, best first, rather than
    refusing a request some model could answer; `refuse` rejects them all (400)."""

    class Settings(_Settings):
        min_quality: float = Field(default=0.0, ge=0, le=1)
        below_floor: Literal["best", "refuse"] = "best"

    kind: PlanKind = "fallback"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or self.Settings()

    def rank(self, ctx: PlanContext) -> tuple[Ranking, list[Rejection]]:
        floor = self.settings.min_quality
        kept = [c for c in ctx.candidates if c.score.quality >= floor]
        if not kept and self.settings.below_floor == "best":
            best = sorted(
                ctx.candidates, key=lambda c: (-c.score.quality, c.score.expected_cost_usd)
            )
            why = f"no model predicted >= floor {floor:.2f}; best predicted"
            return [(c, f"{why}: quality {c.score.quality:.2f}, cost {_cost(c)}") for c in best], []
        rejections = [
            Rejection(c.card.id, f"predicted quality {c.score.quality:.2f} < floor {floor:.2f}")
            for c in ctx.candidates
            if c.score.quality < floor
        ]
        kept.sort(key=lambda c: (c.score.expected_cost_usd, -c.score.quality, c.card.id))
        return [(c, f"expected cost {_cost(c)}, quality {c.score.quality:.2f}") for c in kept], (
            rejections
        )


class BestQualityPolicy:
    """The highest predicted quality first; cheaper first among equals."""

    class Settings(_Settings):
        pass

    kind: PlanKind = "fallback"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or self.Settings()

    def rank(self, ctx: PlanContext) -> tuple[Ranking, list[Rejection]]:
        ordered = sorted(
            ctx.candidates,
            key=lambda c: (-c.score.quality, c.score.expected_cost_usd, c.card.id),
        )
        return [
            (c, f"quality {c.score.quality:.2f}, expected cost {_cost(c)}") for c in ordered
        ], []


class UtilityPolicy:
    """Maximise quality − λ·expected cost ($) − μ·expected latency (s).

    λ is the price of quality: with the default λ = 50, paying one more cent must
    buy at least 0.5 more predicted quality, so cheap models take what the priors
    say they can and the frontier model only what they cannot. The request's cost
    and latency ceilings are applied before ranking.
    """

    class Settings(_Settings):
        lambda_cost: float = Field(default=50.0, ge=0)
        mu_latency: float = Field(default=0.01, ge=0)

    kind: PlanKind = "fallback"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or self.Settings()

    def utility(self, c: Candidate) -> float:
        s = self.settings
        return (
            c.score.quality
            - s.lambda_cost * float(c.score.expected_cost_usd)
            - s.mu_latency * c.score.expected_latency_ms / 1000.0
        )

    def rank(self, ctx: PlanContext) -> tuple[Ranking, list[Rejection]]:
        ordered = sorted(ctx.candidates, key=lambda c: (-self.utility(c), c.card.id))
        return [
            (
                c,
                f"utility {self.utility(c):.4f} = quality {c.score.quality:.2f} "
                f"- {self.settings.lambda_cost:g}x{_cost(c)} "
                f"- {self.settings.mu_latency:g}x{c.score.expected_latency_ms / 1000:.2f}s",
            )
            for c in ordered
        ], []


class FixedPolicy:
    """One named model (an alias, or a concrete model id), then optional fallbacks."""

    class Settings(_Settings):
        model: str
        fallback: list[str] = Field(default_factory=list)

    kind: PlanKind = "single"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kind = "fallback" if settings.fallback else "single"

    def wanted(self) -> list[str]:
        return [self.settings.model, *self.settings.fallback]

    def rank(self, ctx: PlanContext) -> tuple[Ranking, list[Rejection]]:
        by_id = {c.card.id: c for c in ctx.candidates}
        return [
            (by_id[m], "fixed model" if m == self.settings.model else "listed fallback")
            for m in self.wanted()
            if m in by_id
        ], []
