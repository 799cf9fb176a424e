"""What metrics need while the app runs: with several workers, each samples its own
breakers in the background and removes its live gauges when it stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from modelyard.observability.exposition import worker_exited
from modelyard.observability.gauges import GaugeSampler, multiprocess_dir, run_health_sampler


@contextlib.asynccontextmanager
async def metrics_lifespan(gauges: GaugeSampler) -> AsyncIterator[None]:
    """Runs around the app's life; a no-op for a single process (gauges are sampled
    at scrape time)."""
    if multiprocess_dir() is None:
        yield
        return
    task = asyncio.get_running_loop().create_task(run_health_sampler(gauges))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        worker_exited()
