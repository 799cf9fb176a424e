"""The replay harness on the real AlpacaEval outcome data (a slice of it)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from modelyard.evaluation.harness import ReplayHarness, derive_prices
from modelyard.evaluation.metrics import oracle_point, pick_pair, single_model_points
from modelyard.learned.outcomes import OutcomeSet, load_outcomes
from tests.data_paths import SHARED_DATA, needs_data

pytestmark = needs_data("alpacaeval-routing")


@pytest.fixture(scope="module")
def alpaca() -> OutcomeSet:
    return load_outcomes(SHARED_DATA / "alpacaeval-routing")


def test_derived_prices_are_the_readmes_list_prices(alpaca: OutcomeSet) -> None:
    prices = derive_prices(alpaca)
    assert prices["gpt4_1106_preview"] == (Decimal(10), Decimal(30))
    assert prices["claude-instant-1.2"] == (Decimal("0.8"), Decimal("2.4"))
    assert prices["FuseChat-Llama-3.1-8B-Instruct"] == (Decimal("0.18"), Decimal("0.18"))


async def test_every_model_replayed_bills_exactly_the_recorded_cost(alpaca: OutcomeSet) -> None:
    rows = list(range(0, len(alpaca), 12))  # 39 prompts x 17 models
    async with ReplayHarness(alpaca) as harness:
        for model in alpaca.models:
            await harness.run(model, rows)
        records = await harness.records()
        runs = await harness.results()
    assert len(records) == len(rows) * len(alpaca.models)
    for j, model in enumerate(alpaca.models):
        billed = sum((r.cost_usd for r in records if r.model_id == model), Decimal(0))
        assert billed == sum((alpaca.cost_decimal(i, model) for i in rows), Decimal(0))
        np.testing.assert_array_equal(runs[model].quality, alpaca.quality[rows, j])
    # The ledger's view and the data's view of the baselines agree.
    sub = alpaca.subset(rows)
    singles = {p.label: p for p in single_model_points(sub.quality, sub.cost_usd, sub.models)}
    for model, run in runs.items():
        assert run.point().quality == pytest.approx(singles[model].quality)
        assert run.point().cost_per_1k == pytest.approx(singles[model].cost_per_1k)


def test_the_oracle_and_the_pair_on_alpacaeval(alpaca: OutcomeSet) -> None:
    oracle = oracle_point(alpaca.quality, alpaca.cost_usd)
    best = max(np.nanmean(alpaca.quality, axis=0))
    assert oracle.quality > best
    strong, weak = pick_pair(alpaca.quality, alpaca.cost_usd, alpaca.models)
    assert strong == alpaca.models[int(np.argmax(np.nanmean(alpaca.quality, axis=0)))]
    assert np.nanmean(alpaca.cost_usd[:, alpaca.models.index(weak)]) == pytest.approx(
        np.nanmean(alpaca.cost_usd, axis=0).min()
    )
