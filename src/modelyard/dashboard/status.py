"""Provider health now, and the specialists' coverage and confidence.

Health joins two views: the engine's own breakers and cool-downs (this replica's
state, shared through Redis when configured) and the error rate of each
deployment's recent records in the ledger (every replica's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Integer, and_, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.dashboard.params import DateRange
from modelyard.dashboard.sql import FAILED, c, in_range
from modelyard.health import HealthState, InProcessHealth

RECENT: Final = timedelta(minutes=15)
CONFIDENCE_BINS: Final = 10


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    deployment: str
    breaker: str
    unavailable: str | None
    calls: int
    failed: int
    rate_limited: int
    mean_latency_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.calls if self.calls else None


def _breakers(health: HealthState) -> InProcessHealth | None:
    """The in-process breakers behind `health` (SharedHealth keeps them in `.local`)."""
    if isinstance(health, InProcessHealth):
        return health
    local = getattr(health, "local", None)
    return local if isinstance(local, InProcessHealth) else None


async def deployment_health(
    db: AsyncEngine,
    deployments: Iterable[str],
    health: HealthState,
    now: datetime,
    monotonic_now: float,
) -> list[DeploymentHealth]:
    """Each deployment's breaker, why it is skipped (if it is), and its last 15 minutes."""
    stmt = (
        select(
            c.deployment,
            func.count(),
            func.sum(case((c.status.in_(FAILED), 1), else_=0)),
            func.sum(case((c.error_class == "ProviderRateLimitError", 1), else_=0)),
            func.avg(c.latency_ms),
        )
        .where(and_(c.started_at >= now - RECENT, c.status != "shadow"))
        .group_by(c.deployment)
    )
    async with db.connect() as conn:
        recent = {r[0]: r for r in await conn.execute(stmt)}
    skipped = health.unavailable(monotonic_now)
    breakers = _breakers(health)
    out = []
    for name in sorted(set(deployments) | set(recent)):
        row = recent.get(name)
        state = breakers.state(name, monotonic_now) if breakers is not None else "unknown"
        out.append(
            DeploymentHealth(
                deployment=name,
                breaker=state.replace("_", "-"),
                unavailable=skipped.get(name),
                calls=int(row[1]) if row else 0,
                failed=int(row[2] or 0) if row else 0,
                rate_limited=int(row[3] or 0) if row else 0,
                mean_latency_ms=None if row is None or row[4] is None else float(row[4]),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Coverage:
    """A task's specialist calls: answered (kept) vs escalated (handed on), and how
    many fell in each tenth of confidence (0-0.1, ..., 0.9-1)."""

    task: str
    answered: int
    escalated: int
    bins: list[int]

    @property
    def coverage(self) -> float | None:
        total = self.answered + self.escalated
        return self.answered / total if total else None


async def specialist_coverage(db: AsyncEngine, span: DateRange) -> list[Coverage]:
    """Per task, over `span`: specialist records are those carrying a confidence."""
    task = func.coalesce(c.task, "(no task)")
    # floor(confidence * 10), with 1.0 in the top bin. SQLite's CAST truncates (the
    # floor, for these non-negative values); PostgreSQL's rounds, so it uses floor().
    tenth: ColumnElement[Any] = func.min(
        cast(c.confidence * CONFIDENCE_BINS, Integer), CONFIDENCE_BINS - 1
    )
    if db.dialect.name == "postgresql":
        tenth = func.least(func.floor(c.confidence * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)
    stmt = (
        select(task, c.status, tenth, func.count())
        .where(in_range(span), c.confidence.is_not(None), c.status.in_(("ok", "escalated")))
        .group_by(task, c.status, tenth)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    found: dict[str, Coverage] = {}
    for name, status, bin_, count in rows:
        cov = found.setdefault(name, Coverage(name, 0, 0, [0] * CONFIDENCE_BINS))
        n = int(count)
        if status == "ok":
            found[name] = Coverage(name, cov.answered + n, cov.escalated, cov.bins)
        else:
            found[name] = Coverage(name, cov.answered, cov.escalated + n, cov.bins)
        found[name].bins[max(0, min(int(bin_), CONFIDENCE_BINS - 1))] += n
    return [found[k] for k in sorted(found)]
