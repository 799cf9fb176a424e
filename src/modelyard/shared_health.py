"""Breakers and 429 cool-downs shared between replicas through Redis.

`SharedHealth` is a `HealthState` that keeps the in-process breakers (the
executor's calls stay synchronous and free) and shares their two verdicts that
matter across replicas: "this deployment's circuit is open until T" and "this
deployment said 429, cool down until T". Each is published to one Redis hash
(`{prefix}health`, wall-clock deadlines, since replicas' monotonic clocks differ)
when it happens, and every replica pulls the hash every `pull_s` seconds into its
own breakers. Half-open probes stay per replica. If Redis is unreachable each
replica keeps its own breakers (logged once), which is what they were before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from modelyard.errors import ModelyardError
from modelyard.health import InProcessHealth

log = logging.getLogger("modelyard.health")


class SharedHealth:
    """A `HealthState` over `InProcessHealth`, synchronised through Redis."""

    def __init__(
        self,
        local: InProcessHealth,
        client: Any,
        *,
        prefix: str = "modelyard:",
        pull_s: float = 0.5,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.local = local
        self.client = client
        self.key = prefix + "health"
        self.pull_s = pull_s
        self.wall = wall
        self.monotonic = monotonic
        self._tasks: set[asyncio.Task[None]] = set()
        self._down = False

    def unavailable(self, now: float) -> Mapping[str, str]:
        return self.local.unavailable(now)

    def acquire(self, deployment: str, now: float) -> bool:
        return self.local.acquire(deployment, now)

    def release(self, deployment: str) -> None:
        self.local.release(deployment)

    def record_success(self, deployment: str, now: float) -> None:
        was_open = self.local.state(deployment, now) != "closed"
        self.local.record_success(deployment, now)
        if was_open:
            self._publish({}, [f"{deployment}:open"])

    def record_failure(self, deployment: str, error: ModelyardError, now: float) -> None:
        d = self.local._get(deployment)
        cooling, state = d.cooling_until, d.state
        self.local.record_failure(deployment, error, now)
        fields: dict[str, float] = {}
        if d.cooling_until > cooling:
            fields[f"{deployment}:cool"] = self.wall() + (d.cooling_until - now)
        if d.state == "open" and state != "open":
            fields[f"{deployment}:open"] = self.wall() + self.local.settings.cooldown_s
        if fields:
            self._publish(fields, [])

    def _publish(self, fields: dict[str, float], drop: list[str]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._send(fields, drop))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, fields: dict[str, float], drop: list[str]) -> None:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                if fields:
                    pipe.hset(self.key, mapping=fields)
                if drop:
                    pipe.hdel(self.key, *drop)
                await pipe.execute()
        except Exception as exc:  # Redis down: breakers stay per replica
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        if not self._down:
            log.warning("shared breakers: Redis unreachable (%s); per-replica until back", exc)
        self._down = True

    async def pull(self) -> None:
        """Apply the shared deadlines to the local breakers (once)."""
        try:
            raw = await self.client.hgetall(self.key)
        except Exception as exc:
            self._warn(exc)
            return
        self._down = False
        apply_shared(self.local, raw, self.wall(), self.monotonic())

    async def run(self) -> None:
        """Pull every `pull_s` seconds until cancelled."""
        while True:
            await self.pull()
            await asyncio.sleep(self.pull_s)

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task


def apply_shared(local: InProcessHealth, raw: Mapping[Any, Any], wall: float, mono: float) -> None:
    """Fold `{deployment:cool|open: wall-clock deadline}` into `local` at `mono`."""
    for name, value in raw.items():
        field = name.decode() if isinstance(name, bytes) else str(name)
        deployment, _, kind = field.rpartition(":")
        left = float(value) - wall
        if left <= 0 or not deployment:
            continue
        d = local._get(deployment)
        if kind == "cool":
            d.cooling_until = max(d.cooling_until, mono + left)
        elif kind == "open" and d.state != "open":
            d.state, d.probes_out = "open", 0
            d.opened_at = mono + left - local.settings.cooldown_s
            d.failures = max(d.failures, local.settings.failure_threshold)
            d.last_error = d.last_error or "opened by another replica"
