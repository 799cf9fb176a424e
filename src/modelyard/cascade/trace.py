"""What a cascade did: each hop's models, verdict and score, and the total cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelyard.types import Money

HopVerdict = Literal["accepted", "rejected", "failed", "final", "streamed"]


@dataclass(frozen=True, slots=True)
class HopTrace:
    """One step: the models that answered it (or were tried), and what became of it.

    `final`: the last step's answer, served without a verdict (nothing is left to
    escalate to); `streamed`: the same, streamed directly to the caller."""

    step: int
    models: tuple[str, ...]
    verdict: HopVerdict
    score: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class CascadeTrace:
    """The hops of one cascade request. `verdict` is the served hop's; `cost_usd` is
    every hop's and every verifier call's cost together (what the caller pays)."""

    hops: tuple[HopTrace, ...]
    cost_usd: Money

    @property
    def served(self) -> HopTrace:
        return self.hops[-1]

    def headers(self) -> dict[str, str]:
        """`x-modelyard-hops`, `-verdict` and `-verifier-score` response headers."""
        score = self.served.score
        return {
            "x-modelyard-hops": ", ".join(
                f"{h.step}:{'+'.join(h.models)}={h.verdict}" for h in self.hops
            ),
            "x-modelyard-verdict": self.served.verdict,
            "x-modelyard-verifier-score": "none" if score is None else f"{score:.4f}",
        }
