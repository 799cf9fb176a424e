"""A gateway with a known SQLite ledger behind `/ui`, served by a real uvicorn.

`site` is open (loopback, no keys); `locked_site` has a key and an admin key, so
its dashboard needs the admin key. Both are module-scoped: the pages only read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelyard.admin import KeySpec, create_key
from modelyard.app_factory import Stack
from modelyard.keys import KeyStore
from modelyard.ledger import SqlLedger
from tests.dashboard import data
from tests.e2e.conftest import LiveServer
from tests.stack import ENV, stack_config

ADMIN_KEY = "admin-" + "x" * 40


@dataclass
class Site:
    url: str
    ledger: data.Ledger
    database: str


async def _fill(url: str, ledger: data.Ledger, with_key: bool) -> None:
    store = SqlLedger(url)
    await store.open()
    try:
        for record in ledger.records:
            await store.write(record)
        if with_key:
            await create_key(await KeyStore.for_ledger(store), KeySpec(name="bot"))
    finally:
        await store.close()


def serve(path: Path, ledger: data.Ledger, *, locked: bool = False) -> Iterator[Site]:
    url = f"sqlite:///{path}"
    asyncio.run(_fill(url, ledger, locked))
    env = {**ENV, **({"MODELYARD_ADMIN_KEY": ADMIN_KEY} if locked else {})}
    app = Stack(stack_config(), "test-stack.yaml", env).create_app(SqlLedger(url))
    server = LiveServer(app, "dashboard")
    server.start()
    try:
        yield Site(server.url, ledger, url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from serve(tmp_path_factory.mktemp("dash") / "ledger.db", data.build())


@pytest.fixture(scope="module")
def empty_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from serve(tmp_path_factory.mktemp("empty") / "ledger.db", data.Ledger([]))


@pytest.fixture(scope="module")
def locked_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from serve(tmp_path_factory.mktemp("locked") / "ledger.db", data.build(20), locked=True)
