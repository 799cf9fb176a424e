"""Ledger store fixtures: every store test runs on memory, SQLite and PostgreSQL.

PostgreSQL comes from `MODELYARD_TEST_POSTGRES_URL` (default
postgresql://postgres@127.0.0.1:5432/test). Each test gets a fresh schema,
dropped afterwards. Unreachable: the PostgreSQL cases skip, except under CI
(`CI` set), where they fail, because CI must exercise them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy.engine import make_url

from modelyard.ledger import InMemoryLedger, LedgerStore, SqlLedger

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Far from UTC (UTC+14), so a day bucketed in the session's zone, not UTC, shows.
POSTGRES_SESSION_TZ = "Pacific/Kiritimati"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _libpq_url(url: str) -> str:
    """The test URL in the form libpq accepts (no SQLAlchemy `+driver`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _skip_or_fail(reason: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"{reason} (CI is set, so PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL, once it has answered; skip (or fail under CI) if it does not."""
    url = os.environ.get("MODELYARD_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        import psycopg
    except ImportError:
        _skip_or_fail("psycopg is not installed (pip install 'modelyard[postgres]')")
    try:
        psycopg.connect(_libpq_url(url), connect_timeout=3).close()
    except psycopg.Error as exc:
        _skip_or_fail(f"PostgreSQL at {shown} is unreachable: {exc}".strip())
    return url


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A fresh, empty schema for one test; dropped with everything in it afterwards."""
    import psycopg

    schema = f"modelyard_test_{secrets.token_hex(6)}"
    with psycopg.connect(_libpq_url(postgres_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(_libpq_url(postgres_url), autocommit=True) as conn:
            # A leaked connection must not hang the suite on the drop.
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@dataclass(frozen=True)
class Backend:
    """One storage backend: `make()` gives a new, unopened store on the same storage."""

    name: str
    make: Callable[[], LedgerStore]


def _sqlite_backend(tmp_path: Path) -> Backend:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    return Backend("sqlite", lambda: SqlLedger(url))


def _postgres_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    url: str = request.getfixturevalue("postgres_url")
    schema: str = request.getfixturevalue("pg_schema")
    # libpq sends PGTZ as the session TimeZone: UTC bucketing must not depend on it.
    monkeypatch.setenv("PGTZ", POSTGRES_SESSION_TZ)
    return Backend("postgres", lambda: SqlLedger(url, schema=schema))


def _make_backend(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    if name == "memory":
        return Backend("memory", InMemoryLedger)
    if name == "sqlite":
        return _sqlite_backend(tmp_path)
    return _postgres_backend(request, monkeypatch)


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    """Every backend."""
    return _make_backend(request.param, request, tmp_path, monkeypatch)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    """The database backends only (persistence, migrations)."""
    return _make_backend(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
async def ledger(backend: Backend) -> AsyncIterator[LedgerStore]:
    """An open store on each backend, closed afterwards."""
    store = backend.make()
    await store.open()
    try:
        yield store
    finally:
        await store.close()
