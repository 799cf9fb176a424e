"""Key and budget administration, shared by the CLI and the `/admin` HTTP API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from modelyard.budgets.spec import Budget, OnExhaust, parse_budget
from modelyard.keys import ApiKey, KeyError_, KeyStore, check_name, hash_key, new_key
from modelyard.ledger.records import SpendScope
from modelyard.types import DataClass

SCOPES = ("global", "key", "team", "user", "tag")


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What `keys create` asks for."""

    name: str
    team: str | None = None
    budget: str | None = None
    on_exhaust: OnExhaust = "downgrade"
    rpm: int | None = None
    tpm: int | None = None
    models: Sequence[str] = ()
    policies: Sequence[str] = ()
    max_data_class: str | None = None
    expires_days: float | None = None
    cap_max_tokens: bool = True


def _globs(values: Sequence[str], what: str) -> tuple[str, ...]:
    out = tuple(g.strip() for v in values for g in v.split(",") if g.strip())
    for g in out:
        if len(g) > 200 or not g.isprintable():
            raise KeyError_(f"{what} pattern {g[:50]!r} is not a printable pattern")
    return out


async def create_key(
    store: KeyStore, spec: KeySpec, now: datetime | None = None
) -> tuple[str, ApiKey]:
    """Create a key (and its own budget, if given); the secret is returned once."""
    now = now or datetime.now(UTC)
    check_name(spec.name)
    for n, what in ((spec.rpm, "rpm"), (spec.tpm, "tpm")):
        if n is not None and not 0 < n <= 10**9:
            raise KeyError_(f"{what} must be between 1 and 1e9, got {n}")
    budget = parse_budget(spec.budget) if spec.budget else None
    try:
        dc = DataClass(spec.max_data_class) if spec.max_data_class else None
    except ValueError:
        raise KeyError_(
            f"unknown data class {spec.max_data_class!r} (public, internal, confidential)"
        ) from None
    if spec.expires_days is not None and not 0 < spec.expires_days <= 36500:
        raise KeyError_("expires-days must be between 0 and 36500")
    secret, key_id = new_key()
    key = ApiKey(
        id=key_id,
        name=spec.name,
        prefix=secret[:11],
        key_hash=hash_key(secret),
        team=spec.team,
        created_at=now,
        expires_at=now + timedelta(days=spec.expires_days) if spec.expires_days else None,
        rpm=spec.rpm,
        tpm=spec.tpm,
        models=_globs(spec.models, "model"),
        policies=_globs(spec.policies, "policy"),
        max_data_class=dc,
        cap_max_tokens=spec.cap_max_tokens,
    )
    await store.create(key)
    if budget is not None:
        amount, period = budget
        await store.set_budget(
            Budget(SpendScope("key", key_id), amount, period, spec.on_exhaust), now
        )
    return secret, key


def scope_of(kind: str, subject: str | None) -> SpendScope:
    """A budget scope from CLI/API input, validated."""
    if kind not in SCOPES:
        raise KeyError_(f"unknown budget scope {kind!r} (use {', '.join(SCOPES)})")
    if kind == "global":
        return SpendScope("global")
    if not subject:
        raise KeyError_(f"a {kind} budget needs a subject (the {kind}'s name)")
    check_name(subject, kind)
    return SpendScope(kind, subject)  # type: ignore[arg-type]


async def set_budget(
    store: KeyStore, kind: str, subject: str | None, text: str, on_exhaust: str = "downgrade"
) -> Budget:
    """Set a budget from text such as `500/month`; a key is named by its name."""
    if on_exhaust not in ("downgrade", "refuse"):
        raise KeyError_(f"on-exhaust must be downgrade or refuse, got {on_exhaust!r}")
    amount, period = parse_budget(text)
    if kind == "key" and subject:
        key = await store.by_name(subject)
        if key is None:
            raise KeyError_(f"no key named '{subject}'")
        subject = key.id
    budget = Budget(
        scope_of(kind, subject), amount, period, "refuse" if on_exhaust == "refuse" else "downgrade"
    )
    await store.set_budget(budget, datetime.now(UTC))
    return budget


def describe(key: ApiKey) -> dict[str, Any]:
    """A key as JSON, without its hash."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "team": key.team,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "models": list(key.models),
        "policies": list(key.policies),
        "max_data_class": key.max_data_class.value if key.max_data_class else None,
    }


def describe_budget(budget: Budget) -> dict[str, Any]:
    return {
        "scope": budget.scope.kind,
        "subject": budget.scope.subject,
        "limit_usd": str(budget.limit_usd),
        "period": budget.period,
        "on_exhaust": budget.on_exhaust,
    }
