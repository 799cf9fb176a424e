"""The `council` policy: several models answer, an adjudicator reconciles them.

    policies:
      council:
        type: council
        members: {count: 3, diverse_families: true}   # or [m1, m2, {model: m3, fallback: [m4]}]
        adjudicator: vote                             # or a model, alias or policy
        accept: {min_agreement: 0.67}

The router plans it like any policy: every member passes the capability filter, the
data class and the request's ceilings first. Chosen members (`count`) are the best
predicted qualified models, one per family when `diverse_families`; each member gets
its own fallback from the models not chosen (never a model another member uses, so
no model votes twice). The request's `max_cost_usd` bounds the members' expected
cost together: the most expensive members are dropped until it fits. Fewer than two
members left degrades the council to a single route, with the reason in the notes.
The executor (`modelyard.council`) runs the members and the adjudication.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelyard import plugins
from modelyard.errors import ConfigError
from modelyard.routing.cascade import Member
from modelyard.routing.plan import (
    CouncilPlan,
    PlanKind,
    RankedCandidate,
    Rejection,
    Step,
)
from modelyard.routing.policies import PlanContext, Ranking, _Settings
from modelyard.types import Requirements

VOTE = "vote"


class MemberCount(BaseModel):
    """Members chosen by the router: the `count` best predicted qualified models."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    count: int = Field(default=3, ge=2, le=9)
    diverse_families: bool = True


class Accept(BaseModel):
    """When a council's answer is accepted without review."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Compared at two decimals, so 0.67 means "two of three".
    min_agreement: float = Field(default=0.67, gt=0, le=1)


class CouncilPolicy:
    """Members answer in parallel; a vote or an adjudicator model reconciles them."""

    class Settings(_Settings):
        members: MemberCount | list[str | Member] = Field(default_factory=MemberCount)
        adjudicator: str = VOTE
        accept: Accept = Field(default_factory=Accept)
        # How final answers are extracted for the vote (the agreement verifier's
        # extractors); `text` compares claims only (free text with stray numbers).
        extract: str = "auto"
        # How free-text claims are matched: `auto` (MiniLM when it loads, else
        # token overlap), `embedding` or `tokens`.
        matcher: Literal["auto", "embedding", "tokens"] = "auto"

        @field_validator("extract")
        @classmethod
        def _known_extractor(cls, value: str) -> str:
            known = plugins.names(plugins.EXTRACTORS) | {"text"}
            if value not in known:
                raise ValueError(f"unknown extractor '{value}' (known: {', '.join(sorted(known))})")
            return value

        @field_validator("members")
        @classmethod
        def _members(cls, value: MemberCount | list[str | Member]) -> Any:
            if isinstance(value, list):
                if len(value) < 2:
                    raise ValueError("a council lists at least two members")
                seen: set[str] = set()
                for member in value:
                    for model in _chain(member):
                        if model in seen:
                            raise ValueError(f"model '{model}' is named twice: it would vote twice")
                        seen.add(model)
            return value

        def with_aliases(self, aliases: Mapping[str, str]) -> CouncilPolicy.Settings:
            """These settings with every alias in the members resolved to its model id."""
            if not isinstance(self.members, list):
                return self
            resolved: list[str | Member] = [
                Member(
                    model=aliases.get(m.model, m.model),
                    fallback=[aliases.get(f, f) for f in m.fallback],
                )
                if isinstance(m, Member)
                else aliases.get(m, m)
                for m in self.members
            ]
            return self.model_copy(update={"members": resolved})

    kind: PlanKind = "council"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> dict[str, Any]:
        s = self.settings
        members: Any = (
            s.members.model_dump()
            if isinstance(s.members, MemberCount)
            else [_chain(m) for m in s.members]
        )
        return {
            "members": members,
            "adjudicator": s.adjudicator,
            "min_agreement": s.accept.min_agreement,
            "extract": s.extract,
            "matcher": s.matcher,
        }

    def rank(self, ctx: PlanContext) -> tuple[Ranking, list[Rejection]]:
        """Qualified models, best predicted first (the single route a council degrades
        to); with an explicit member list, models in no member are dropped."""
        ordered = sorted(
            ctx.candidates,
            key=lambda c: (-c.score.quality, c.score.expected_cost_usd, c.card.id),
        )
        if isinstance(self.settings.members, MemberCount):
            return [(c, f"quality {c.score.quality:.2f}") for c in ordered], []
        named = [m for member in self.settings.members for m in _chain(member)]
        by_id = {c.card.id: c for c in ctx.candidates}
        ranking: Ranking = [(by_id[m], "council member") for m in named if m in by_id]
        dropped = [
            Rejection(c.card.id, "not a member of the council")
            for c in ctx.candidates
            if c.card.id not in named
        ]
        return ranking, dropped

    def plan_council(
        self,
        candidates: Sequence[RankedCandidate],
        reasons: Mapping[str, str],
        requirements: Requirements,
    ) -> tuple[CouncilPlan | None, list[str]]:
        """The members' step over the qualified `candidates` (None: fewer than two
        members qualify or fit the budget, so the request takes a single route),
        and a note for every member dropped."""
        if isinstance(self.settings.members, MemberCount):
            slots, notes = _chosen(candidates, self.settings.members)
        else:
            slots, notes = _listed(candidates, self.settings.members, reasons)
        slots, over = _within_budget(slots, requirements.max_cost_usd)
        notes += over
        if len(slots) < 2:
            notes.append(
                f"council degraded to a single route: {len(slots)} qualified member(s), "
                "a council needs two"
            )
            return None, notes
        plan = CouncilPlan(
            members=Step(1, 0, tuple(slots)),
            adjudicator=self.settings.adjudicator,
            min_agreement=self.settings.accept.min_agreement,
            settings=self.describe(),
        )
        return plan, notes

    @staticmethod
    def check_references(name: str, settings: Mapping[str, Any], config: Any, where: str) -> None:
        """At load: listed members are declared models or aliases (never policies);
        the adjudicator is `vote`, a declared model, alias or policy, and not a council."""
        models, aliases, policies = config.models, config.aliases, config.policies
        members = settings.get("members")
        if isinstance(members, list):
            for i, raw in enumerate(members):
                member = raw if isinstance(raw, str) else Member.model_validate(raw)
                for model in _chain(member):
                    if model not in models and model not in aliases:
                        what = "a policy" if model in policies else "not declared"
                        raise ConfigError(
                            f"{where}.members.{i}: '{model}' is {what}; members name declared "
                            f"models or aliases (declared: {', '.join(sorted(models)) or 'none'})"
                        )
        judge = settings.get("adjudicator", VOTE)
        if judge == VOTE:
            return
        policy = policies.get(judge)
        if judge not in models and judge not in aliases and policy is None:
            raise ConfigError(
                f"{where}.adjudicator: '{judge}' is not 'vote' nor a declared model, alias "
                "or policy"
            )
        if judge == name or (policy is not None and policy.type in ("council", "cascade")):
            raise ConfigError(
                f"{where}.adjudicator: '{judge}' is a {policy.type if policy else 'council'}; "
                "an adjudicator answers with one call (a council adjudicating a council "
                "could cycle)"
            )


def _chain(member: str | Member) -> list[str]:
    return [member] if isinstance(member, str) else member.chain


def _chosen(
    candidates: Sequence[RankedCandidate], wanted: MemberCount
) -> tuple[list[tuple[RankedCandidate, ...]], list[str]]:
    """The `count` best candidates (one per family when diverse), and each member's
    fallback dealt round-robin from the rest, so no model serves two members."""
    primaries: list[RankedCandidate] = []
    families: set[str] = set()
    for c in candidates:
        if len(primaries) == wanted.count:
            break
        if wanted.diverse_families and c.card.family in families:
            continue
        primaries.append(c)
        families.add(c.card.family)
    notes: list[str] = []
    if len(primaries) < wanted.count:
        why = " from distinct families" if wanted.diverse_families else ""
        notes.append(f"council: {len(primaries)} of {wanted.count} members qualified{why}")
    rest = [c for c in candidates if c not in primaries]
    slots = [[p] for p in primaries]
    for i, c in enumerate(rest):
        if slots:
            slots[i % len(slots)].append(c)
    return [tuple(s) for s in slots], notes


def _listed(
    candidates: Sequence[RankedCandidate],
    members: Sequence[str | Member],
    reasons: Mapping[str, str],
) -> tuple[list[tuple[RankedCandidate, ...]], list[str]]:
    by_id = {c.card.id: c for c in candidates}
    slots: list[tuple[RankedCandidate, ...]] = []
    notes: list[str] = []
    for member in members:
        chain = _chain(member)
        slot = tuple(by_id[m] for m in chain if m in by_id)
        missing = [f"{m}: {reasons.get(m, 'not qualified')}" for m in chain if m not in by_id]
        if not slot:
            notes.append(f"council member {chain[0]} dropped: " + "; ".join(missing))
        else:
            slots.append(slot)
    return slots, notes


def _within_budget(
    slots: list[tuple[RankedCandidate, ...]], budget: Decimal | None
) -> tuple[list[tuple[RankedCandidate, ...]], list[str]]:
    """Drop the most expensive members until the members' expected cost together fits
    `max_cost_usd` (the adjudicator's call is not in the estimate: it is routed later)."""
    if budget is None:
        return slots, []
    kept = list(slots)
    notes: list[str] = []

    def total() -> Decimal:
        return sum((s[0].score.expected_cost_usd for s in kept), Decimal(0))

    while kept and total() > budget:
        dearest = max(kept, key=lambda s: s[0].score.expected_cost_usd)
        notes.append(
            f"council member {dearest[0].card.id} dropped: members' expected cost "
            f"${total():.6f} exceeds max_cost_usd {budget}"
        )
        kept.remove(dearest)
    return kept, notes
