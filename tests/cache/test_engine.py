"""The response cache at the Engine: hit, miss and bypass; the ledger record of a hit;
isolation across keys and data classes; TTL and LRU bounds; stale and corrupt entries."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from modelyard.cache.entry import CachedAnswer
from modelyard.engine import Engine
from modelyard.keys import ApiKey, Principal
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.types import ChatRequest, DataClass, RoutingHints
from tests.cache.conftest import (
    FakeTime,
    ask,
    calls,
    make_engine,
    shared_memory_cache,
    status,
)


def principal(key_id: str, **rules: object) -> Principal:
    key = ApiKey(
        id=key_id,
        name=f"key-{key_id}",
        prefix="my-" + key_id,
        key_hash="0" * 64,
        team=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        **rules,  # type: ignore[arg-type]
    )
    return Principal(key=key)


async def test_second_identical_request_is_a_hit_billed_zero_naming_the_model(
    engine: Engine, ledger: InMemoryLedger, providers: dict[str, FunctionProvider]
) -> None:
    _, first = await engine.complete(ask(model="cheap"), request_id="r1")
    decision, hit = await engine.complete(ask(model="cheap"), request_id="r2")
    assert calls(providers) == 1
    assert status(first) == "miss"
    assert status(hit) == "hit"
    assert hit.completion.content == first.completion.content == "ok from small"
    assert hit.card.id == "small"
    assert hit.cost_usd == 0
    # The answer keeps its token counts; the caller pays nothing for them.
    assert hit.completion.usage.output_tokens == first.completion.usage.output_tokens
    (record,) = await ledger.records(request_id="r2")
    assert record.status == "cached"
    assert record.cost_usd == 0
    assert (record.input_tokens, record.output_tokens) == (0, 0)
    assert (record.model_id, record.deployment) == ("small", "cheapco")
    assert record.decision_id == decision.id
    cache = record.reasons["cache"]
    assert cache["source_request_id"] == "r1"
    assert Decimal(cache["saved_usd"]) == first.cost_usd > 0
    assert "response cache" in record.reasons["notes"][0]


async def test_usage_report_counts_hits_as_calls_not_errors(
    engine: Engine, ledger: InMemoryLedger
) -> None:
    for _ in range(3):
        await engine.complete(ask(model="cheap"))
    (row,) = await ledger.usage(by=("model",))
    assert (row.calls, row.errors, row.cached) == (3, 0, 2)


async def test_parameters_that_change_the_answer_miss_and_those_that_do_not_hit(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    await engine.complete(ask(model="cheap", max_tokens=50, stop="END"))
    # Same answer: the other spelling of the limit, a list stop, an end user, metadata.
    same = ask(
        model="small",
        max_completion_tokens=50,
        stop=["END"],
        user="u-1",
        metadata={"trace": "x"},
    )
    _, outcome = await engine.complete(same)
    assert status(outcome) == "hit"
    for different in (
        ask(model="cheap", max_tokens=51, stop="END"),
        ask(model="cheap", max_tokens=50, stop="END", seed=3),
        ask(model="cheap", max_tokens=50, stop="END", top_p=0.5),
        ask("hello!", model="cheap", max_tokens=50, stop="END"),
        ask(model="cheap", max_tokens=50, stop="END", response_format={"type": "json_object"}),
    ):
        _, outcome = await engine.complete(different)
        assert status(outcome) == "miss", different
    assert calls(providers) == 6


async def test_sampled_requests_bypass_unless_the_operator_opts_in(
    ledger: InMemoryLedger, providers: dict[str, FunctionProvider]
) -> None:
    engine = make_engine(ledger, providers)
    for request in (ask(temperature=0.7), ask(temperature=None)):
        _, outcome = await engine.complete(request)
        _, again = await engine.complete(request)
        assert status(again) == "bypass"
        assert "sampled request" in (again.cache.reason or "")
    seeded = ask(temperature=0.7, seed=1)
    await engine.complete(seeded)
    _, outcome = await engine.complete(seeded)
    assert status(outcome) == "hit"

    opted_in = make_engine(ledger, providers, cache={"sampled": True})
    await opted_in.complete(ask(temperature=0.7))
    _, outcome = await opted_in.complete(ask(temperature=0.7))
    assert status(outcome) == "hit"


async def test_no_cache_skips_the_lookup_but_refreshes_the_entry(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    await engine.complete(ask())
    providers["cheapco"].complete_fn = _answer("fresh")
    fresh = ask(modelyard=RoutingHints(cache="no-cache"))
    _, outcome = await engine.complete(fresh)
    assert status(outcome) == "bypass"
    assert outcome.completion.content == "fresh"
    _, after = await engine.complete(ask())
    assert status(after) == "hit"
    assert after.completion.content == "fresh"


async def test_no_store_neither_reads_nor_writes(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    private = ask(modelyard=RoutingHints(cache="no-store"))
    await engine.complete(private)
    _, outcome = await engine.complete(ask())
    assert status(outcome) == "miss"
    assert calls(providers) == 2


async def test_never_shared_across_api_keys(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    await engine.complete(ask(), principal=principal("k1"))
    _, other = await engine.complete(ask(), principal=principal("k2"))
    _, anonymous = await engine.complete(ask())
    _, same = await engine.complete(ask(), principal=principal("k1"))
    assert [o.cache.status if o.cache else None for o in (other, anonymous, same)] == [
        "miss",
        "miss",
        "hit",
    ]
    assert calls(providers) == 3


async def test_never_shared_across_data_classes(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    await engine.complete(ask(modelyard=RoutingHints(data_class=DataClass.PUBLIC)))
    _, internal = await engine.complete(ask(modelyard=RoutingHints(data_class="internal")))
    assert status(internal) == "miss"
    # Confidential answers are not kept unless cache.max_data_class allows them.
    secret = ask(modelyard=RoutingHints(data_class=DataClass.CONFIDENTIAL))
    await engine.complete(secret)
    _, again = await engine.complete(secret)
    assert status(again) == "bypass"
    assert "confidential data is not cached" in (again.cache.reason or "")


async def test_entries_expire_after_the_ttl(
    ledger: InMemoryLedger, providers: dict[str, FunctionProvider], clock: FakeTime
) -> None:
    engine = make_engine(ledger, providers, cache={"ttl_s": 30}, monotonic=clock)
    await engine.complete(ask())
    clock.now += 29
    _, fresh = await engine.complete(ask())
    assert status(fresh) == "hit"
    clock.now += 2
    _, expired = await engine.complete(ask())
    assert status(expired) == "miss"
    assert calls(providers) == 2


async def test_in_process_cache_is_a_bounded_lru(
    ledger: InMemoryLedger, providers: dict[str, FunctionProvider]
) -> None:
    engine = make_engine(ledger, providers, cache={"max_entries": 2})
    for text in ("a", "b", "a", "c"):  # "a" used again: "b" is the least recent
        await engine.complete(ask(text))
    statuses = []
    for text in ("a", "c", "b"):
        _, outcome = await engine.complete(ask(text))
        statuses.append(outcome.cache.status if outcome.cache else None)
    assert statuses == ["hit", "hit", "miss"]


async def test_entry_of_a_removed_model_is_a_miss_routed_afresh(
    ledger: InMemoryLedger, providers: dict[str, FunctionProvider]
) -> None:
    shared = shared_memory_cache()
    before = make_engine(ledger, providers)
    before.cache = shared
    await before.complete(ask(model="pinned"))  # the fixed policy answers with `small`
    # A reload without `small`: the policy now pins `vision-mid`.
    from tests.stack import STACK

    models = {k: v for k, v in STACK["models"].items() if k != "small"}
    policies = {**STACK["policies"], "pinned": {"type": "fixed", "model": "vision-mid"}}
    after = make_engine(
        ledger, providers, models=models, aliases={"best-model": "frontier"}, policies=policies
    )
    after.cache = shared
    _, outcome = await after.complete(ask(model="pinned"))
    assert outcome.card.id == "vision-mid"
    assert status(outcome) == "miss"
    assert outcome.cache.reason == (
        "stale entry dropped: model 'small' is no longer in the catalog"
    )
    _, again = await after.complete(ask(model="pinned"))
    assert status(again) == "hit"
    assert again.card.id == "vision-mid"


async def test_corrupt_entry_is_dropped_and_the_request_served(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    await engine.complete(ask())
    assert engine.cache is not None
    backend = engine.cache.backend
    entries = backend._entries  # type: ignore[attr-defined]
    (key,) = list(entries)
    for garbage in (b"\x80not json", b'{"v": 1, "model_id": "small"}', b'{"v": 99}'):
        entries[key] = garbage
        _, outcome = await engine.complete(ask())
        assert outcome.cache is not None
        assert (outcome.cache.status, outcome.cache.reason) == ("miss", "corrupt entry dropped")
        assert (outcome.completion.content or "").startswith("ok from ")
    _, healed = await engine.complete(ask())
    assert status(healed) == "hit"


async def test_unknown_model_is_still_a_404_with_the_cache_on(engine: Engine) -> None:
    from modelyard.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        await engine.complete(ask(model="no-such-model"))


async def test_a_key_that_may_no_longer_use_the_model_misses(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    await engine.complete(ask(model="pinned"), principal=principal("k1"))  # `small` answers
    narrowed = principal("k1", models=("vision-mid", "frontier", "local-llm"))
    _, outcome = await engine.complete(ask(model="pinned"), principal=narrowed)
    assert status(outcome) == "miss"
    assert "may no longer use model 'small'" in (outcome.cache.reason or "")


def test_stored_answer_round_trips_as_json() -> None:
    answer = CachedAnswer(
        model_id="m",
        policy="auto",
        content="hi",
        finish_reason="stop",
        usage={"input_tokens": 3, "output_tokens": 1},  # type: ignore[arg-type]
        cost_usd=Decimal("0.000001"),
        stored_at=datetime(2026, 1, 1, tzinfo=UTC),
        request_id="r",
        decision_id="d",
    )
    raw = answer.encode()
    assert raw.startswith(b"{")
    assert CachedAnswer.decode(raw) == answer


def _answer(text: str):  # type: ignore[no-untyped-def]
    from modelyard.types import Completion, Usage

    async def complete(request: ChatRequest, upstream: str) -> Completion:
        return Completion("c", upstream, text, usage=Usage(10, 2))

    return complete
