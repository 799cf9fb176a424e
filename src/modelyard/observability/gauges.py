"""Gauges read from live state, not counted: breakers and cool-downs per deployment
(the executor's health state) and budget headroom (the budget gate).

`sample()` runs at every scrape, in the process that serves it. With several
workers (`PROMETHEUS_MULTIPROC_DIR`), breakers are per worker, so each worker also
samples its breakers every `interval_s` (`run_health_sampler`), and a worker that
shuts down removes its live gauges (`mark_process_dead`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from modelyard.errors import ModelyardError
from modelyard.health import InProcessHealth
from modelyard.observability.metrics import BREAKER_VALUES, Metrics, metrics

if TYPE_CHECKING:
    from modelyard.engine import Engine

log = logging.getLogger("modelyard.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """Where workers' metric files live, when metrics are aggregated across processes."""
    return os.environ.get(MULTIPROC_ENV) or None


class GaugeSampler:
    """Sets the state gauges from `engine`'s health state and budget gate."""

    def __init__(self, engine: Engine, families: Metrics | None = None) -> None:
        self.engine = engine
        self.m = families or metrics()

    def _breakers(self) -> InProcessHealth | None:
        health = self.engine.executor.health
        if isinstance(health, InProcessHealth):
            return health
        # `SharedHealth` keeps its breakers in an `InProcessHealth` it syncs via Redis.
        local = getattr(health, "local", None)
        return local if isinstance(local, InProcessHealth) else None

    def sample_health(self) -> None:
        """Breaker state, consecutive failures and cool-downs of every deployment."""
        breakers = self._breakers()
        if breakers is None:
            return
        now = self.engine.executor.monotonic()
        m = self.m
        for name in self.engine.executor.providers:
            view = breakers.view(name, now)
            m.breaker_state.labels(name).set(BREAKER_VALUES[view.state])
            m.breaker_failures.labels(name).set(view.failures)
            m.cooldown.labels(name, "breaker").set(round(view.open_s, 3))
            m.cooldown.labels(name, "rate_limit").set(round(view.cooling_s, 3))

    async def sample_budgets(self) -> None:
        """Every budget's headroom and limit (skipped, logged, when the shared
        budget state is unreachable: the other metrics are still served)."""
        gate = self.engine.gate
        if gate is None:
            return
        try:
            headroom = await gate.headroom()
        except ModelyardError as exc:
            log.warning("/metrics: budget headroom unavailable: %s", exc.message)
            return
        m = self.m
        for budget, left in headroom:
            labels = (budget.scope.kind, budget.scope.subject, budget.period)
            m.budget_remaining.labels(*labels).set(float(left))
            m.budget_limit.labels(*labels).set(float(budget.limit_usd))

    async def sample(self) -> None:
        self.sample_health()
        await self.sample_budgets()


async def run_health_sampler(sampler: GaugeSampler, interval_s: float = 2.0) -> None:
    """Sample this worker's breakers every `interval_s`, until cancelled."""
    while True:
        try:
            sampler.sample_health()
        except Exception:  # a metrics bug must never take a worker down
            log.exception("sampling breaker gauges failed")
        await asyncio.sleep(interval_s)
