"""ReplayProvider answers from the data and bills the recorded cost; the harness reads
routing and spend back from the ledger rows."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from modelyard.errors import ProviderResponseError, UpstreamRequestError
from modelyard.evaluation.harness import ReplayHarness, derive_prices, replay_config
from modelyard.evaluation.replay import ReplayProvider, prompt_metadata
from modelyard.types import ChatRequest, Message
from tests.evaluation.tiny import MODELS, PRICES, tiny_outcomes


def _request(text: str, **extra: object) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], **extra)  # type: ignore[arg-type]


async def test_answers_with_the_recorded_response_tokens_and_exact_cost() -> None:
    data = tiny_outcomes()
    provider = ReplayProvider(data)
    completion = await provider.complete(_request("question number 4"), "mid")
    assert completion.content == "mid says 4"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (10, 54)
    # 10 x $1/M + 54 x $3/M, exactly.
    assert completion.usage.cost_usd == Decimal("0.000172000")


async def test_metadata_names_the_prompt_even_when_texts_repeat() -> None:
    data = tiny_outcomes()
    provider = ReplayProvider(data)
    request = _request("some other wording", **prompt_metadata("2"))
    assert (await provider.complete(request, "big")).content == "big says 2"


async def test_unknown_prompts_and_models_are_the_callers_fault() -> None:
    provider = ReplayProvider(tiny_outcomes())
    with pytest.raises(UpstreamRequestError, match="no prompt with this conversation"):
        await provider.complete(_request("never asked"), "big")
    with pytest.raises(UpstreamRequestError, match="no prompt with id '99'"):
        await provider.complete(_request("x", **prompt_metadata("99")), "big")
    with pytest.raises(UpstreamRequestError, match="no model 'gpt-9'"):
        await provider.complete(_request("question number 1"), "gpt-9")


async def test_a_missing_outcome_is_a_retryable_upstream_failure() -> None:
    provider = ReplayProvider(tiny_outcomes(missing=(1, "big")))
    with pytest.raises(ProviderResponseError, match="big has no recorded outcome for prompt 1"):
        await provider.complete(_request("question number 1"), "big")


async def test_stream_replays_the_text_then_usage() -> None:
    provider = ReplayProvider(tiny_outcomes())
    chunks = [c async for c in provider.stream(_request("question number 3"), "small")]
    assert "".join(c.content or "" for c in chunks) == "small says 3"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.cost_usd == Decimal("0.000007900")


def test_prices_are_derived_from_the_recorded_costs() -> None:
    prices = derive_prices(tiny_outcomes())
    for model, (p_in, p_out) in PRICES.items():
        assert prices[model] == (Decimal(str(p_in)), Decimal(str(p_out)))
    config = replay_config(tiny_outcomes(), {"cheap": {"type": "cheapest"}})
    assert sorted(config.models) == sorted(MODELS)
    assert config.models["mid"].prices is not None
    assert config.models["mid"].prices.output == Decimal(3)


async def test_every_attempt_is_a_ledger_row_and_costs_come_back_exactly() -> None:
    data = tiny_outcomes()
    async with ReplayHarness(data, {"cheap": {"type": "cheapest"}}) as harness:
        for model in MODELS:
            await harness.run(model, range(len(data)))
        await harness.run("cheap", range(len(data)))
        records = await harness.records()
        runs = await harness.results()
    # One attempt per request: 3 models + 1 policy, 6 prompts each.
    assert len(records) == 4 * len(data)
    assert {r.status for r in records} == {"ok"}
    for j, model in enumerate(MODELS):
        run = runs[model]
        assert run.model.tolist() == [j] * len(data)
        np.testing.assert_allclose(run.cost, data.cost_usd[run.rows, j])
        np.testing.assert_array_equal(run.quality, data.quality[run.rows, j])
    assert sum((r.cost_usd for r in records if r.model_id == "big"), Decimal(0)) == sum(
        (data.cost_decimal(i, "big") for i in range(len(data))), Decimal(0)
    )
    # The cheapest policy always sends to the small model.
    assert runs["cheap"].model.tolist() == [2] * len(data)


async def test_a_missing_outcome_falls_back_and_both_attempts_are_billed() -> None:
    data = tiny_outcomes(missing=(1, "small"))
    async with ReplayHarness(data, {"cheap": {"type": "cheapest"}}) as harness:
        await harness.run("cheap", range(len(data)))
        records = await harness.records()
        run = (await harness.results())["cheap"]
    # Prompt 1: small fails (no outcome), mid answers. Rows = prompts + that one retry.
    assert len(records) == len(data) + 1
    failed = [r for r in records if r.status == "error"]
    assert [(r.model_id, r.attempt, r.cost_usd) for r in failed] == [("small", 1, Decimal(0))]
    assert run.model.tolist() == [2, 1, 2, 2, 2, 2]
    assert run.attempts.tolist() == [1, 2, 1, 1, 1, 1]


async def test_a_request_nothing_can_serve_counts_as_failed() -> None:
    data = tiny_outcomes()
    floor = {"picky": {"type": "cheapest", "min_quality": 0.99, "below_floor": "refuse"}}
    async with ReplayHarness(data, floor) as harness:
        await harness.run("picky", range(2))
        run = (await harness.results())["picky"]
    # The priors say 0.5 for every model: nothing meets the floor, nothing is called.
    assert run.failed == 2
    assert run.model.tolist() == [-1, -1]
    assert run.cost.tolist() == [0.0, 0.0]


async def test_replay_is_deterministic() -> None:
    data = tiny_outcomes()

    async def once() -> list[tuple[str, str, str]]:
        async with ReplayHarness(data, {"u": {"type": "utility", "lambda_cost": 100}}) as h:
            await h.run("u", range(len(data)))
            return [(r.id, r.decision_id, r.started_at.isoformat()) for r in await h.records()]

    assert await once() == await once()
