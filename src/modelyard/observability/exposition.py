"""The `/metrics` body: this process's registry, or, when workers share
`PROMETHEUS_MULTIPROC_DIR`, every worker's metric files aggregated."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from modelyard.observability.gauges import multiprocess_dir


def render() -> tuple[bytes, str]:
    """The exposition text and its content type (CPU and file reads: run it off the
    event loop)."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def worker_exited(pid: int | None = None) -> None:
    """Drop a worker's live gauges (its counters stay in the sums). A worker calls
    it for itself at shutdown; a supervisor may call it for a worker that died."""
    if multiprocess_dir() is not None:
        mark_process_dead(pid if pid is not None else os.getpid())  # type: ignore[no-untyped-call]
