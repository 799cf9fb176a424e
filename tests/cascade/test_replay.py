"""A cascade runs through the replay harness's Engine unchanged: recorded answers,
recorded costs; what the ledger bills is exactly the dataset's cost of every hop."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

pytest.importorskip("numpy")

from modelyard.evaluation.harness import ReplayHarness
from modelyard.types import ChatRequest, Completion
from tests.evaluation.tiny import tiny_outcomes

# tiny: "<model> says <i>": every model gives the same number on a prompt.
FRUGAL = {
    "type": "cascade",
    "tiers": ["small", "mid", "big"],
    "verifier": {"type": "agreement", "min_agree": 2, "extract": "number"},
}


async def test_a_replayed_cascade_bills_the_recorded_cost_of_every_hop() -> None:
    data = tiny_outcomes(4)
    async with ReplayHarness(data, {"frugal": FRUGAL}) as harness:
        await harness.run("frugal", range(len(data)))
        records = await harness.records()
    by_prompt: dict[str, list[tuple[str, str | None, str]]] = {}
    for r in records:
        by_prompt.setdefault(r.request_id, []).append((r.model_id, r.role, r.status))
    assert list(by_prompt.values()) == [
        [("small", "candidate", "escalated"), ("mid", "answer", "ok")]
    ] * len(data)
    billed = sum((r.cost_usd for r in records), Decimal(0))
    recorded = sum(
        (data.exact_cost[(p.id, m)] for p in data.prompts for m in ("small", "mid")), Decimal(0)
    )
    assert billed == recorded


async def test_parsed_answers_from_the_dataset_drive_agreement() -> None:
    data = tiny_outcomes(2)
    async with ReplayHarness(data, {"frugal": FRUGAL}) as harness:
        original = harness.provider.answer

        def with_pred(request: ChatRequest, upstream: str) -> Completion:
            # What the ReplayProvider will do with a dataset's `pred` column.
            pred = {"small": "1", "mid": "2", "big": "2"}[upstream]
            return replace(original(request, upstream), parsed_answer=pred)

        harness.provider.answer = with_pred  # type: ignore[method-assign]
        await harness.run("frugal", range(len(data)))
        records = await harness.records()
    served = [r.model_id for r in records if r.role == "answer"]
    assert served == ["big", "big"], "small and mid disagree on their parsed answers"
