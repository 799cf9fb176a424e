"""`modelyard serve`: uvicorn on the fast stack, in one process or N sharing a port.

- The event loop is uvloop and the HTTP parser httptools (llhttp, C) when they are
  installed (the `fast` extra); else asyncio and h11. Either way uvicorn runs the
  front door's slowloris deadline (`front.header_timeout_protocol`).
- No access log unless asked (`--access-log`): a log line per request cost ~2 % of
  the gateway's CPU, and the ledger already records every call.
- `workers > 1`: uvicorn's supervisor binds the port once and spawns N processes
  that accept on it. Each builds its own app from the settings passed in the
  environment (`MODELYARD_SERVE`, JSON), so each has its own ledger writer
  (group commit per process; SQLite in WAL with a busy timeout serialises the
  processes' commits) and its own in-flight limit. Before the workers start, a
  fresh `PROMETHEUS_MULTIPROC_DIR` is created for prometheus-client's multiprocess
  mode, so `/metrics` can aggregate every worker; it is removed at exit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from modelyard.server.front import HeaderTimeoutH11, HeaderTimeoutHttpTools, header_timeout_protocol

if TYPE_CHECKING:
    from fastapi import FastAPI

    from modelyard.app_factory import Stack

SETTINGS_ENV: Final = "MODELYARD_SERVE"
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# h11 answers headers past its buffer with a plain-text 400; a larger buffer lets the
# app's own check answer up to 1 MiB of headers in OpenAI's shape.
H11_MAX_EVENT_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """What `modelyard serve` was asked for (also what each worker rebuilds from)."""

    config: str | None
    local: tuple[str, ...]
    host: str | None = None
    port: int | None = None
    workers: int = 1
    max_in_flight: int | None = None
    access_log: bool = False


def fast_stack() -> tuple[Literal["uvloop", "asyncio"], Literal["httptools", "h11"]]:
    """The event loop and HTTP parser to run: the C ones when installed."""
    loop: Literal["uvloop", "asyncio"] = (
        "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    )
    parser: Literal["httptools", "h11"] = (
        "httptools" if importlib.util.find_spec("httptools") else "h11"
    )
    return loop, parser


def build_app(stack: Stack, settings: ServeSettings) -> FastAPI:
    """The gateway app for `settings` (the in-flight limit from the flag or config)."""
    if settings.max_in_flight is not None:
        server = stack.config.server.model_copy(update={"max_in_flight": settings.max_in_flight})
        stack.config = stack.config.model_copy(update={"server": server})
    return stack.create_app(bind_host=settings.host or stack.config.server.host)


def run(stack: Stack, settings: ServeSettings) -> None:
    """Serve until interrupted: one process, or `settings.workers` sharing the port."""
    import uvicorn

    server = stack.config.server
    loop, parser = fast_stack()
    common: dict[str, Any] = {
        "host": settings.host or server.host,
        "port": settings.port or server.port,
        "log_level": "info",
        "loop": loop,
        "access_log": settings.access_log,
        "h11_max_incomplete_event_size": H11_MAX_EVENT_BYTES,
    }
    if settings.workers <= 1:
        protocol = header_timeout_protocol(server.header_timeout_s, parser=parser)
        uvicorn.run(build_app(stack, settings), http=protocol, **common)
        return
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    with multiprocess_metrics_dir():
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=settings.workers,
            http=f"{__name__}:{WORKER_PROTOCOLS[parser].__name__}",
            **common,
        )


@contextmanager
def multiprocess_metrics_dir() -> Iterator[str]:
    """A fresh `PROMETHEUS_MULTIPROC_DIR` for the workers (set before they start, so
    their prometheus-client writes its values there), removed at exit."""
    path = tempfile.mkdtemp(prefix="modelyard-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


class WorkerH11(HeaderTimeoutH11):
    """The h11 protocol a worker runs; its deadline is set by `worker_app`."""


class WorkerHttpTools(HeaderTimeoutHttpTools):
    """The httptools protocol a worker runs; its deadline is set by `worker_app`."""


# Importable by name: uvicorn passes its settings to spawned workers by pickling,
# so the protocol cannot be a class made at run time.
WORKER_PROTOCOLS: Final[dict[str, type[WorkerH11] | type[WorkerHttpTools]]] = {
    "h11": WorkerH11,
    "httptools": WorkerHttpTools,
}


def worker_app() -> FastAPI:
    """The app in one worker process, built from the settings its parent exported."""
    from modelyard.app_factory import load_stack

    raw = json.loads(os.environ[SETTINGS_ENV])
    settings = ServeSettings(**{**raw, "local": tuple(raw["local"])})
    stack = load_stack(settings.config, settings.local, dict(os.environ))
    # Each worker is its own process: setting its protocols' deadline here is local.
    for protocol in WORKER_PROTOCOLS.values():
        protocol.header_timeout_s = stack.config.server.header_timeout_s
    return build_app(stack, settings)
