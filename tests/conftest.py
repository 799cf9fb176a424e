"""Shared fixtures: an Engine over the test stack with function providers, and an ASGI client."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from modelyard.engine import Engine, build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import create_app
from tests.data_paths import SHARED_DATA
from tests.stack import ENV, echo_completion, stack_config

# Embeddings, learned routing and specialists need the `learned`/`train` extras
# (NumPy, ONNX Runtime, scikit-learn). On a light install their directories are not
# collected, and the report header says why; `scripts/test` installs the extras, so
# CI runs them.
EXTRA_DIRS = ("embeddings", "learned", "evaluation", "specialists")
HAS_EXTRAS = all(importlib.util.find_spec(m) is not None for m in ("numpy", "sklearn"))
collect_ignore_glob = [] if HAS_EXTRAS else [f"{d}/*" for d in EXTRA_DIRS]


def pytest_report_header() -> str | None:
    if HAS_EXTRAS:
        return None
    dirs = ", ".join(f"tests/{d}" for d in EXTRA_DIRS)
    return f"not collected: {dirs} (need pip install -e '.[train]')"


@pytest.fixture
def missing_dataset_under_ci() -> None:
    """Used by `needs_data` under CI when a dataset is missing: fail, do not skip."""
    pytest.fail(
        f"a dataset under {SHARED_DATA} is missing, and CI must run the data tests "
        "(set MODELYARD_SHARED_DATA)",
        pytrace=False,
    )


@pytest.fixture
def providers() -> dict[str, FunctionProvider]:
    return {name: FunctionProvider(echo_completion()) for name in ("cheapco", "bigco", "onprem")}


@pytest.fixture
async def ledger() -> AsyncIterator[InMemoryLedger]:
    store = InMemoryLedger()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def engine(providers: dict[str, FunctionProvider], ledger: InMemoryLedger) -> Engine:
    counter = iter(range(1, 1_000_000))
    return build_engine(
        stack_config(),
        env=ENV,
        ledger=ledger,
        providers=providers,
        rng=random.Random(7),
        ids=lambda: f"id{next(counter)}",
        source="test-stack.yaml",
    )


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c
