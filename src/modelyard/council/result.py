"""What a council did: members, their answers and cost, claims, agreement, review."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelyard.council.agreement import Method, Zone
from modelyard.council.claims import Claim
from modelyard.types import Money


@dataclass(frozen=True, slots=True)
class MemberResult:
    """One member: the model that answered for it (or the primary that failed)."""

    model_id: str
    status: str  # answered | failed
    answer: str | None
    key: str | None
    cost_usd: Money
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "status": self.status,
            "answer": self.answer,
            "final_answer": self.key,
            "cost_usd": str(self.cost_usd),
            "error": self.error,
        }


@dataclass(slots=True)
class CouncilResult:
    """A council's outcome. `claims` are the served answer's claims linked back to
    the members that support or contradict them; `member_claims` is the claim map
    across members. `cost_usd` is every member's and the adjudicator's cost."""

    members: list[MemberResult]
    adjudicator: str
    adjudicated_by: str
    method: Method
    agreement: float
    zone: Zone
    votes: dict[str, tuple[str, ...]]
    claims: list[tuple[Claim, Zone]]
    member_claims: list[tuple[Claim, Zone]]
    cited: tuple[str, ...]
    cost_usd: Money
    reason: str
    notes: list[str] = field(default_factory=list)
    # Why an agreed result still goes to review (an adjudicator that cited nobody).
    review_reason: str | None = None
    review_id: str | None = None

    @property
    def needs_review(self) -> bool:
        return self.zone == "disputed" or self.review_reason is not None

    def to_json(self) -> dict[str, Any]:
        """The `modelyard.council` object of the response body."""
        return {
            "members": [m.to_json() for m in self.members],
            "adjudicator": self.adjudicator,
            "adjudicated_by": self.adjudicated_by,
            "method": self.method,
            "votes": {k: list(v) for k, v in self.votes.items()},
            "claims": [c.to_json(z) for c, z in self.claims],
            "member_claims": [c.to_json(z) for c, z in self.member_claims],
            "cited": list(self.cited),
            "agreement": round(self.agreement, 4),
            "zone": self.zone,
            "reason": self.reason,
            "cost_usd": str(self.cost_usd),
            "notes": list(self.notes),
            "review": None
            if self.review_id is None
            else {"id": self.review_id, "status": "pending"},
        }

    def headers(self) -> dict[str, str]:
        """`x-modelyard-agreement`, `-zone`, and `x-modelyard-review: pending` when flagged."""
        headers = {
            "x-modelyard-agreement": f"{self.agreement:.4f}",
            "x-modelyard-zone": self.zone,
        }
        if self.review_id is not None:
            headers["x-modelyard-review"] = "pending"
            headers["x-modelyard-review-id"] = self.review_id
        return headers
