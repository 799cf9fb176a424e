"""What trying a specialist end to end found: a last-resort answer that looked
confident, a cost that left out the escalated call, `0E-9`, long and non-UTF-8 data,
the lazy first load, and the benchmark ignoring MODELYARD_SHARED_DATA."""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("sklearn")

from modelyard.ledger import InMemoryLedger
from modelyard.server.app import create_app
from modelyard.specialists.data import DataError, check_lengths, load_labelled
from modelyard.specialists.provider import SpecialistProvider, warm_specialists
from modelyard.specialists.settings import SpecialistSettings
from modelyard.specialists.text import CHARS_PER_TOKEN_BOUND, capped_token_lengths
from modelyard.types import money_text
from tests.specialists.helpers import make_rows, write_csv
from tests.specialists.test_routing import MODEL, engine_for

REPO = Path(__file__).resolve().parents[2]


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": [{"role": "user", "content": text}],
        "modelyard": {"task": "intents"},
        **extra,
    }


async def post(engine: Any, payload: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/v1/chat/completions", json=payload)


async def test_a_last_resort_low_confidence_answer_is_marked(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = engine_for(intents_dir, ledger, min_confidence=0.999, oos_threshold=1.0)
    response = await post(engine, body("please help", model=MODEL))
    assert response.status_code == 200
    mark = response.headers["x-modelyard-low-confidence"]
    assert mark.startswith("low_confidence; confidence=")
    assert "threshold=0.999" in mark
    info = response.json()["modelyard"]["low_confidence"]
    assert info["reason"] == "low_confidence"
    assert 0 < info["confidence"] < 0.999
    # A confident answer carries no mark.
    confident = await post(engine_for(intents_dir, ledger, min_confidence=0.0), body("refund"))
    assert "x-modelyard-low-confidence" not in confident.headers
    assert confident.json()["modelyard"]["low_confidence"] is None


async def test_a_streamed_last_resort_answer_is_marked_too(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = engine_for(intents_dir, ledger, min_confidence=0.999, oos_threshold=1.0)
    response = await post(engine, body("please help", model=MODEL, stream=True))
    assert response.headers["x-modelyard-low-confidence"].startswith("low_confidence")


async def test_the_caller_sees_the_requests_total_cost(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = engine_for(
        intents_dir, ledger, min_confidence=0.999, oos_threshold=1.0, cost_per_call_usd="0.25"
    )
    response = await post(engine, body("please help"))
    records = await ledger.records()
    assert [r.status for r in records] == ["escalated", "ok"]
    total = sum((r.cost_usd for r in records), Decimal(0))
    assert records[0].cost_usd == Decimal("0.25")
    assert Decimal(response.headers["x-modelyard-cost-usd"]) == total
    assert Decimal(response.json()["modelyard"]["cost_usd"]) == total


async def test_the_final_stream_chunk_shows_the_requests_total_cost(
    intents_dir: Path, ledger: InMemoryLedger
) -> None:
    engine = engine_for(
        intents_dir, ledger, min_confidence=0.999, oos_threshold=1.0, cost_per_call_usd="0.25"
    )
    payload = body("please help", stream=True, stream_options={"include_usage": True})
    response = await post(engine, payload)
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
    ]
    costs = [e["modelyard"]["cost_usd"] for e in events if "modelyard" in e]
    total = sum((r.cost_usd for r in await ledger.records()), Decimal(0))
    assert costs
    assert Decimal(costs[-1]) == total
    assert total > Decimal("0.25")


async def test_zero_cost_is_plain_zero(intents_dir: Path, ledger: InMemoryLedger) -> None:
    assert money_text(Decimal("0E-9")) == "0"
    assert money_text(Decimal("1.2E-7")) == "0.00000012"
    assert money_text(Decimal("0.000100000")) == "0.0001"
    response = await post(engine_for(intents_dir, ledger, min_confidence=0.0), body("refund"))
    assert response.headers["x-modelyard-cost-usd"] == "0"
    assert response.json()["modelyard"]["cost_usd"] == "0"


def test_a_csv_text_over_131072_characters_reaches_the_length_check(tmp_path: Path) -> None:
    from modelyard.embeddings import load_encoder

    long_text = "refund " * 30_000  # 210,000 characters
    rows = [*make_rows(5), (long_text, "billing")]
    data = load_labelled(write_csv(tmp_path / "long.csv", rows))
    assert max(len(t) for t in data.texts) > 131_072
    encoder = load_encoder("minilm-l6-v2") if _has_minilm() else None
    if encoder is not None:
        with pytest.raises(DataError, match=r"line 17: \d+\+ tokens.*--truncate"):
            check_lengths(data, encoder, truncate=False)
        assert check_lengths(data, encoder, truncate=True) == [15]


def _has_minilm() -> bool:
    try:
        from modelyard.embeddings import load_encoder

        load_encoder("minilm-l6-v2")
    except Exception:
        return False
    return True


class CountingEncoder:
    """Records the longest text it was asked to tokenise; one token per character."""

    def __init__(self) -> None:
        self.longest = 0

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        self.longest = max([self.longest, *(len(t) for t in texts)])
        return [len(t) for t in texts]


def test_a_huge_text_is_judged_from_a_prefix() -> None:
    counting = CountingEncoder()
    huge = "x" * 5_000_000
    [count] = capped_token_lengths(counting, [huge], 256)
    assert count > 256
    assert counting.longest <= 257 * CHARS_PER_TOKEN_BOUND

    # Mostly whitespace: the prefix holds too few tokens, so the whole text is counted.
    class Spaces(CountingEncoder):
        def token_lengths(self, texts: Sequence[str]) -> list[int]:
            super().token_lengths(texts)
            return [len(t.split()) for t in texts]

    spaces = Spaces()
    assert capped_token_lengths(spaces, [" " * 100_000 + "a b"], 256) == [2]
    assert spaces.longest == 100_003


def test_a_non_utf8_byte_is_reported_by_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"text,label\nrefund me,billing\ncaf\xe9 order,shipping\n")
    with pytest.raises(DataError, match=r"line 3: not UTF-8 text .* column 4"):
        load_labelled(path)


async def test_specialists_are_loaded_at_start_up(
    intents_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = SpecialistProvider(SpecialistSettings(intents_dir), deployment="good")
    broken = SpecialistProvider(SpecialistSettings(Path("/nonexistent")), deployment="broken")
    with caplog.at_level(logging.WARNING):
        loaded = await warm_specialists({"good": good, "broken": broken, "other": object()})
    assert loaded == 1
    assert good._model is not None
    assert "broken not loaded at start-up" in caplog.text


async def test_the_gateway_app_warms_specialists_on_start_up(intents_dir: Path) -> None:
    from modelyard.app_factory import Stack
    from tests.stack import ENV, stack_config

    config = stack_config(specialists={"intents": {"artifact": str(intents_dir)}})
    app = Stack(config, "test", ENV).create_app(InMemoryLedger())
    async with app.router.lifespan_context(app):
        provider = app.state.engine.executor.providers["specialist-intents"]
        assert isinstance(provider, SpecialistProvider)
        assert provider._model is not None


def test_the_benchmark_reads_modelyard_shared_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELYARD_SHARED_DATA", str(tmp_path))
    spec = importlib.util.spec_from_file_location("bench_specialist", REPO / "bench/specialist.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert tmp_path / "banking77" == module.DATA
