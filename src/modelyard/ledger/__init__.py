"""The billing ledger: one `CallRecord` per provider attempt, and usage reports over them.

`open_ledger(url)` picks the store: `None` or `memory://` keeps records in
memory; `sqlite:///path` and `postgresql://…` use `SqlLedger`. The default
database is a SQLite file under `MODELYARD_HOME` (default `~/.modelyard`);
`MODELYARD_DATABASE_URL` overrides it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from modelyard.ledger.memory import InMemoryLedger
from modelyard.ledger.records import AttemptStatus, CallRecord, Exchange, LedgerStore, UsageRow
from modelyard.ledger.sql import SqlLedger, normalize_url

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "MEMORY_URL",
    "AttemptStatus",
    "CallRecord",
    "Exchange",
    "InMemoryLedger",
    "LedgerStore",
    "SqlLedger",
    "UsageRow",
    "default_sqlite_path",
    "default_sqlite_url",
    "ledger_url_from_env",
    "normalize_url",
    "open_ledger",
]

MEMORY_URL: Final = "memory://"
# The documented default, before `~` is expanded; `MODELYARD_HOME` replaces `~/.modelyard`.
DEFAULT_SQLITE_PATH: Final = Path("~") / ".modelyard" / "ledger.db"


def default_sqlite_path(env: Mapping[str, str] | None = None) -> Path:
    """The default ledger file: `$MODELYARD_HOME/ledger.db`, else `~/.modelyard/ledger.db`.

    Read at call time, not import time, so a changed environment is honoured.
    """
    env = os.environ if env is None else env
    home = env.get("MODELYARD_HOME")
    if home:
        return Path(home).expanduser() / DEFAULT_SQLITE_PATH.name
    return DEFAULT_SQLITE_PATH.expanduser()


def default_sqlite_url(env: Mapping[str, str] | None = None) -> str:
    """`sqlite:///` plus the absolute default ledger file."""
    return f"sqlite:///{default_sqlite_path(env).resolve()}"


def ledger_url_from_env(default: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """`MODELYARD_DATABASE_URL` if set, else `default` if given, else the default SQLite URL."""
    env = os.environ if env is None else env
    url = env.get("MODELYARD_DATABASE_URL")
    if url:
        return url
    return default if default is not None else default_sqlite_url(env)


def open_ledger(url: str | None) -> LedgerStore:
    """The store for `url` (`None` or `memory://` means in memory); not yet opened."""
    if url is None or url == MEMORY_URL:
        return InMemoryLedger()
    return SqlLedger(url)
