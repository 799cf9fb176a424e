"""Gateway API keys and budget rows, stored in the ledger database (m006).

A key is `my-` + 8 hex characters (its id) + `-` + 43 url-safe characters of
`secrets.token_urlsafe(32)` (256 bits): high entropy, so a plain SHA-256 of it is
as good as a slow password hash, and lookups by hash stay one indexed query. Only
the hash and the first 11 characters are stored; the key is printed once.

`KeyStore` works on the ledger's SQLAlchemy engine (SQLite or PostgreSQL); for an
in-memory ledger it keeps its own in-memory SQLite database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Final

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from modelyard.budgets.spec import Budget, OnExhaust, check_period
from modelyard.ledger.migrations import (
    api_keys,
    budgets,
    nanousd_to_usd,
    usd_to_nanousd,
)
from modelyard.ledger.migrations import metadata as ledger_metadata
from modelyard.ledger.records import LedgerStore, SpendScope
from modelyard.types import DataClass

KEY_PREFIX: Final = "my-"
MAX_KEY_CHARS: Final = 200
_KEY_SHAPE: Final = re.compile(r"my-[0-9a-f]{8}-[A-Za-z0-9_\-]{43}")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DATA_CLASS_ORDER: Final = (DataClass.PUBLIC, DataClass.INTERNAL, DataClass.CONFIDENTIAL)


class KeyError_(ValueError):
    """A key or budget operation that cannot be done; the message says why."""


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its id."""
    key_id = secrets.token_hex(4)
    return f"{KEY_PREFIX}{key_id}-{secrets.token_urlsafe(32)}", key_id


def well_formed(key: str) -> bool:
    """Whether `key` has the shape of a modelyard key (checked before any lookup)."""
    return len(key) <= MAX_KEY_CHARS and _KEY_SHAPE.fullmatch(key) is not None


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.fullmatch(name):
        raise KeyError_(f"{what} {name[:64]!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return name


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored (never the key itself)."""

    id: str
    name: str
    prefix: str
    key_hash: str
    team: str | None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    max_data_class: DataClass | None = None
    cap_max_tokens: bool = True

    def problem(self, now: datetime) -> str | None:
        """Why this key cannot be used now, or None."""
        if self.revoked_at is not None:
            return f"the API key '{self.name}' was revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return f"the API key '{self.name}' expired at {self.expires_at.isoformat()}"
        return None

    def allows_model(self, model_id: str) -> bool:
        return not self.models or any(fnmatchcase(model_id, g) for g in self.models)

    def allows_policy(self, policy: str) -> bool:
        return not self.policies or any(fnmatchcase(policy, g) for g in self.policies)

    def allows_data_class(self, data_class: DataClass) -> bool:
        if self.max_data_class is None:
            return True
        return DATA_CLASS_ORDER.index(data_class) <= DATA_CLASS_ORDER.index(self.max_data_class)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key (if any), its team, the end user and the tags."""

    key: ApiKey | None = None
    user: str | None = None
    tags: tuple[str, ...] = field(default=())

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key else None

    @property
    def team(self) -> str | None:
        return self.key.team if self.key else None

    def scopes(self) -> list[SpendScope]:
        """Every scope whose budgets apply to this caller."""
        out = [SpendScope("global")]
        if self.key is not None:
            out.append(SpendScope("key", self.key.id))
            if self.key.team:
                out.append(SpendScope("team", self.key.team))
        if self.user:
            out.append(SpendScope("user", self.user))
        out.extend(SpendScope("tag", t) for t in self.tags)
        return out


def _key_from_row(row: Any) -> ApiKey:
    dc = row["max_data_class"]
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        key_hash=row["key_hash"],
        team=row["team"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        rpm=row["rpm"],
        tpm=row["tpm"],
        models=tuple(row["models"] or ()),
        policies=tuple(row["policies"] or ()),
        max_data_class=DataClass(dc) if dc else None,
        cap_max_tokens=bool(row["cap_max_tokens"]),
    )


class KeyStore:
    """Keys and budgets in the ledger database (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool = False) -> None:
        self.engine = engine
        self._owns = owns_engine

    @classmethod
    async def for_ledger(cls, ledger: LedgerStore) -> KeyStore:
        """The store next to `ledger` (opened); an in-memory ledger gets a private one."""
        engine = getattr(ledger, "engine", None)
        if isinstance(engine, AsyncEngine):
            return cls(engine)
        private = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
        async with private.begin() as conn:
            await conn.run_sync(lambda c: ledger_metadata.create_all(c, tables=[api_keys, budgets]))
        return cls(private, owns_engine=True)

    async def close(self) -> None:
        if self._owns:
            await self.engine.dispose()

    async def create(self, key: ApiKey) -> None:
        row = {
            "id": key.id,
            "name": check_name(key.name),
            "prefix": key.prefix,
            "key_hash": key.key_hash,
            "team": None if key.team is None else check_name(key.team, "team"),
            "created_at": key.created_at,
            "expires_at": key.expires_at,
            "revoked_at": key.revoked_at,
            "rpm": key.rpm,
            "tpm": key.tpm,
            "models": list(key.models),
            "policies": list(key.policies),
            "max_data_class": key.max_data_class.value if key.max_data_class else None,
            "cap_max_tokens": key.cap_max_tokens,
        }
        if await self.by_name(key.name) is not None:
            raise KeyError_(f"a key named '{key.name}' already exists")
        async with self.engine.begin() as conn:
            await conn.execute(insert(api_keys).values(row))

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)))
                .mappings()
                .first()
            )
        if row is None or not hmac.compare_digest(row["key_hash"], key_hash):
            return None
        return _key_from_row(row)

    async def by_name(self, name: str) -> ApiKey | None:
        async with self.engine.connect() as conn:
            stmt = select(api_keys).where(api_keys.c.name == name)
            row = (await conn.execute(stmt)).mappings().first()
        return None if row is None else _key_from_row(row)

    async def all(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.name))).mappings()
            return [_key_from_row(r) for r in rows]

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(api_keys))).scalar_one()
            )

    async def revoke(self, name: str, now: datetime) -> ApiKey:
        key = await self._existing(name)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key.id).values(revoked_at=now)
            )
        return key

    async def rotate(self, name: str) -> tuple[str, ApiKey]:
        """A new secret for the same key id (budgets and usage carry over); the old
        secret stops working at once."""
        key = await self._existing(name)
        if key.revoked_at is not None:
            raise KeyError_(f"the key '{name}' is revoked; create a new one")
        secret = f"{KEY_PREFIX}{key.id}-{secrets.token_urlsafe(32)}"
        async with self.engine.begin() as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key.id)
                .values(key_hash=hash_key(secret), prefix=secret[:11])
            )
        return secret, key

    async def _existing(self, name: str) -> ApiKey:
        key = await self.by_name(name)
        if key is None:
            raise KeyError_(f"no key named '{name}'")
        return key

    async def set_budget(self, budget: Budget, now: datetime) -> None:
        """Create or replace the budget for (scope, subject, period)."""
        check_period(budget.period)
        values = {
            "scope": budget.scope.kind,
            "subject": budget.scope.subject,
            "period": budget.period,
            "limit_nanousd": usd_to_nanousd(budget.limit_usd),
            "on_exhaust": budget.on_exhaust,
            "updated_at": now,
        }
        c = budgets.c
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(budgets).where(
                    c.scope == budget.scope.kind,
                    c.subject == budget.scope.subject,
                    c.period == budget.period,
                )
            )
            await conn.execute(insert(budgets).values(values))

    async def remove_budget(self, scope: SpendScope, period: str) -> None:
        c = budgets.c
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(budgets).where(
                    c.scope == scope.kind, c.subject == scope.subject, c.period == period
                )
            )

    async def budgets(self) -> list[Budget]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(budgets))).mappings().all()
        return [
            Budget(
                SpendScope(r["scope"], r["subject"]),
                nanousd_to_usd(r["limit_nanousd"]),
                r["period"],
                _on_exhaust(r["on_exhaust"]),
            )
            for r in rows
        ]


def _on_exhaust(value: str) -> OnExhaust:
    return "refuse" if value == "refuse" else "downgrade"


def matching(all_budgets: Sequence[Budget], scopes: Sequence[SpendScope]) -> list[Budget]:
    """The budgets that apply to a caller with `scopes`."""
    wanted = set(scopes)
    return [b for b in all_budgets if b.scope in wanted]
