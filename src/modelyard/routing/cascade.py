"""The `cascade` policy: answer cheaply, verify, escalate only when the check fails.

    policies:
      frugal:
        type: cascade
        tiers: [gemini-flash, [llama-70b, gpt-4o-mini], gpt-4o]
        verifier: {type: agreement, min_agree: 2}
        max_hops: 3

A tier is a model (or alias), a list of models answering in parallel, or
`{model: m, fallback: [m2]}` — a model with its own fallback on provider errors (a
parallel tier's members may be written that way too). The router plans it like any
policy: every model still passes the capability filter, the data class and the
request's ceilings; a tier with no qualified model is skipped with the reason, and
tiers past `max_hops` are not planned. The executor (`modelyard.cascade`) runs the
steps. Tiers name models, never policies, and no model appears twice: escalating to
a model already tried would be a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelyard import plugins
from modelyard.errors import ConfigError
from modelyard.routing.plan import CascadePlan, PlanKind, RankedCandidate, Rejection, Step
from modelyard.routing.policies import PlanContext, Ranking, _Settings
from modelyard.verifiers.base import Verifier, describe


class Member(BaseModel):
    """A tier member with its own fallback chain (tried in order on provider errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    fallback: list[str] = Field(default_factory=list)

    @property
    def chain(self) -> list[str]:
        return [self.model, *self.fallback]


TierMember = str | Member
Tier = TierMember | list[TierMember]


def members(tier: Tier) -> list[Member]:
    """A tier as its members (one, or several answering in parallel)."""
    items = tier if isinstance(tier, list) else [tier]
    return [Member(model=m) if isinstance(m, str) else m for m in items]


def tier_label(tier: Tier) -> str:
    return "+".join(m.model for m in members(tier))


class CascadePolicy:
    """Tiers run one after another until the verifier accepts a tier's answer."""

    class Settings(_Settings):
        tiers: list[Tier] = Field(min_length=1)
        verifier: dict[str, Any]
        max_hops: int | None = Field(default=None, ge=1)

        @field_validator("tiers")
        @classmethod
        def _no_repeats(cls, tiers: list[Tier]) -> list[Tier]:
            seen: dict[str, int] = {}
            for i, tier in enumerate(tiers):
                if isinstance(tier, list) and not tier:
                    raise ValueError(f"tier {i} is an empty list")
                for model in (m for member in members(tier) for m in member.chain):
                    if model in seen:
                        raise ValueError(_repeat(model, seen[model], i))
                    seen[model] = i
            return tiers

        @field_validator("verifier")
        @classmethod
        def _known_verifier(cls, value: dict[str, Any]) -> dict[str, Any]:
            plugins.validate_verifier_settings(value, "verifier")
            return value

        def with_aliases(self, aliases: Mapping[str, str]) -> CascadePolicy.Settings:
            """These settings with every alias in the tiers resolved to its model id."""

            def resolve(member: Member) -> Member:
                return Member(
                    model=aliases.get(member.model, member.model),
                    fallback=[aliases.get(m, m) for m in member.fallback],
                )

            tiers: list[Tier] = [
                [resolve(m) for m in members(t)] if isinstance(t, list) else resolve(members(t)[0])
                for t in self.tiers
            ]
            return self.model_copy(update={"tiers": tiers})

    kind: PlanKind = "cascade"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        verifier_settings = plugins.validate_verifier_settings(settings.verifier, "verifier")
        factory = plugins.load(plugins.VERIFIERS, settings.verifier["type"])
        self.verifier: Verifier = factory(verifier_settings)
        self.verifier_settings = describe(verifier_settings)

    @property
    def max_hops(self) -> int:
        return self.settings.max_hops or len(self.settings.tiers)

    def rank(self, ctx: PlanContext) -> tuple[Ranking, list[Rejection]]:
        """Every qualified model of the tiers, in cascade order (the fallback order
        `/v1/route` shows); models in no tier are dropped."""
        by_id = {c.card.id: c for c in ctx.candidates}
        named = [m for tier in self.settings.tiers for mem in members(tier) for m in mem.chain]
        ranking: Ranking = []
        for i, tier in enumerate(self.settings.tiers):
            for mem in members(tier):
                for j, model in enumerate(mem.chain):
                    if model in by_id:
                        role = "primary" if j == 0 else f"fallback for {mem.model}"
                        ranking.append((by_id[model], f"tier {i}: {role}"))
        dropped = [
            Rejection(c.card.id, "not in the cascade's tiers")
            for c in ctx.candidates
            if c.card.id not in named
        ]
        return ranking, dropped

    def plan_cascade(
        self, candidates: Sequence[RankedCandidate], reasons: Mapping[str, str]
    ) -> tuple[CascadePlan, list[str]]:
        """The steps over the qualified `candidates`, and a note per skipped tier
        (`reasons`: why each unqualified model was dropped)."""
        by_id = {c.card.id: c for c in candidates}
        steps: list[Step] = []
        notes: list[str] = []
        for i, tier in enumerate(self.settings.tiers):
            slots: list[tuple[RankedCandidate, ...]] = []
            why: list[str] = []
            for mem in members(tier):
                slot = tuple(by_id[m] for m in mem.chain if m in by_id)
                why += [
                    f"{m}: {reasons.get(m, 'not qualified')}" for m in mem.chain if m not in by_id
                ]
                if slot:
                    slots.append(slot)
            label = tier_label(tier)
            if not slots:
                notes.append(f"tier {i} ({label}) skipped: " + "; ".join(why))
            elif len(steps) >= self.max_hops:
                notes.append(f"tier {i} ({label}) not planned: max_hops {self.max_hops}")
            else:
                if why:
                    notes.append(f"tier {i} ({label}) without " + "; ".join(why))
                steps.append(Step(len(steps) + 1, i, tuple(slots)))
        plan = CascadePlan(tuple(steps), self.verifier, self.verifier_settings, self.max_hops)
        return plan, notes

    @staticmethod
    def check_references(name: str, settings: Mapping[str, Any], config: Any, where: str) -> None:
        """At load: every tier names a declared model or alias (not a policy), no model
        repeats after aliases resolve, and a judge does not run a cascade."""
        models, aliases, policies = config.models, config.aliases, config.policies
        declared = ", ".join(sorted(models)) or "none"
        seen: dict[str, int] = {}
        for i, tier in enumerate(settings.get("tiers") or []):
            for mem in members(_parse_tier(tier)):
                for model in mem.chain:
                    if model in policies and model not in models and model not in aliases:
                        what = "itself" if model == name else f"policy '{model}'"
                        raise ConfigError(
                            f"{where}.tiers.{i}: names {what}; tiers name models or aliases, "
                            "never policies (a cascade through policies could cycle)"
                        )
                    if model not in models and model not in aliases:
                        raise ConfigError(
                            f"{where}.tiers.{i}: refers to model '{model}', which is not "
                            f"declared (declared: {declared})"
                        )
                    resolved = aliases.get(model, model)
                    if resolved in seen:
                        raise ConfigError(
                            f"{where}.tiers.{i}: " + _repeat(resolved, seen[resolved], i)
                        )
                    seen[resolved] = i
        _check_verifier(name, settings.get("verifier") or {}, config, f"{where}.verifier")


def _parse_tier(raw: Any) -> Tier:
    class _One(BaseModel):
        tier: Tier

    return _One.model_validate({"tier": raw}).tier


def _repeat(model: str, first: int, again: int) -> str:
    return (
        f"model '{model}' is in tier {first} and again in tier {again}: escalating to a "
        "model already tried would be a cycle"
    )


def _check_verifier(name: str, verifier: Mapping[str, Any], config: Any, where: str) -> None:
    judge = verifier.get("model")
    if verifier.get("type") == "judge" and isinstance(judge, str):
        policy = config.policies.get(judge)
        known = judge in config.models or judge in config.aliases or policy is not None
        if not known:
            raise ConfigError(
                f"{where}.model: refers to '{judge}', which is not a declared model, alias "
                "or policy"
            )
        if judge == name or (policy is not None and policy.type == "cascade"):
            raise ConfigError(
                f"{where}.model: '{judge}' is a cascade; a judge that runs a cascade "
                "would verify with verifiers (a cycle)"
            )
    artifact = verifier.get("artifact")
    if verifier.get("type") == "learned" and isinstance(artifact, str):
        path = Path(artifact).expanduser()
        if not (path / "manifest.json").is_file():
            raise ConfigError(
                f"{where}.artifact: no learned verifier at {path} (no manifest.json); "
                "train one with modelyard.verifiers.learned_train"
            )
