"""The `threshold` policy: RouteLLM's two-model mode.

    policies:
      auto: {type: threshold, strong: gpt-4o, weak: gpt-4o-mini, threshold: 0.1}

Send the request to the strong model when its predicted quality beats the weak
model's by more than `threshold`, else to the weak one; the other is the fallback.
Raising the threshold sends fewer requests to the strong model (the knob a
cost–quality curve is swept over). Predicted quality comes from the configured
scorer — with a learned scorer it is per request; with priors it is constant, so
every request goes the same way. Other models are not considered.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from modelyard.routing.plan import Candidate, PlanKind, Rejection
from modelyard.routing.policies import PlanContext, Ranking, _Settings


class ThresholdPolicy:
    """Strong model if q(strong) − q(weak) > threshold, else weak; the other falls back."""

    class Settings(_Settings):
        strong: str
        weak: str
        threshold: float = Field(default=0.0, ge=-1.0, le=1.0)

        @model_validator(mode="after")
        def _two_models(self) -> ThresholdPolicy.Settings:
            if self.strong == self.weak:
                raise ValueError("strong and weak must be different models")
            return self

    kind: PlanKind = "fallback"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def rank(self, ctx: PlanContext) -> tuple[Ranking, list[Rejection]]:
        s = self.settings
        by_id = {c.card.id: c for c in ctx.candidates}
        strong, weak = by_id.get(s.strong), by_id.get(s.weak)
        rejections = [
            Rejection(c.card.id, f"not the strong ({s.strong}) or weak ({s.weak}) model")
            for c in ctx.candidates
            if c.card.id not in (s.strong, s.weak)
        ]
        if strong is None or weak is None:
            # One of the pair failed the filter (its reason is already recorded):
            # the other serves alone.
            only = [c for c in (strong, weak) if c is not None]
            return [(c, "the only qualified model of the strong/weak pair") for c in only], (
                rejections
            )
        qs, qw = strong.score.quality, weak.score.quality
        gap = qs - qw
        detail = f"predicted gap {gap:+.3f} (strong {qs:.3f} - weak {qw:.3f})"
        ranking: list[tuple[Candidate, str]]
        if gap > s.threshold:
            why = f"strong: {detail} > threshold {s.threshold:g}"
            ranking = [(strong, why), (weak, "weak: fallback")]
        else:
            why = f"weak: {detail} <= threshold {s.threshold:g}"
            ranking = [(weak, why), (strong, "strong: fallback")]
        return ranking, rejections
