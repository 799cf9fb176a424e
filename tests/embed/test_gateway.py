"""POST /v1/embeddings through the official openai SDK: OpenAI's wire format (floats
and base64), routing (dimensions, data class, price, token ids), fallback, and one
ledger record per provider call with its tokens and cost."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import openai
import pytest

from modelyard.testing.upstream import EMBEDDINGS_PATH
from modelyard.testing.upstream_embeddings import fake_vector
from tests.embed.conftest import ADA, BACKUP, LOCAL, PRICE, SMALL, Gateway

UPSTREAM = "text-embedding-3-small"


def cost(model: str, tokens: int) -> Decimal:
    return Decimal(PRICE[model]) * tokens / 1_000_000


async def test_float_vectors_usage_cost_and_one_ledger_record(gw: Gateway) -> None:
    raw = await gw.client.embeddings.with_raw_response.create(
        model=SMALL, input=["the cat sat", "on the mat"], encoding_format="float"
    )
    reply = raw.parse()
    assert reply.object == "list"
    assert reply.model == SMALL
    assert [d.index for d in reply.data] == [0, 1]
    for item, text in zip(reply.data, ["the cat sat", "on the mat"], strict=True):
        assert item.object == "embedding"
        assert item.embedding == fake_vector(UPSTREAM, text, 1536).tolist()
    sent = gw.fake.requests_to(EMBEDDINGS_PATH)[0]
    assert sent.body == {
        "model": UPSTREAM,
        "input": ["the cat sat", "on the mat"],
        "encoding_format": "float",
    }
    tokens = sent.usage["prompt_tokens"] if sent.usage else -1
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == tokens > 0
    assert raw.headers["x-modelyard-model"] == SMALL
    assert Decimal(raw.headers["x-modelyard-cost-usd"]) == cost(SMALL, tokens)
    [record] = await gw.ledger.records()
    assert (record.model_id, record.status, record.endpoint) == (SMALL, "ok", "embeddings")
    assert (record.input_tokens, record.output_tokens) == (tokens, 0)
    assert record.cost_usd == cost(SMALL, tokens)
    assert record.decision_id == raw.headers["x-modelyard-decision"]
    assert record.reasons["requirements"]["embedding"]["inputs"] == 2
    assert record.reasons["candidates"][0]["model"] == SMALL


async def test_sdk_default_base64_is_decoded_to_the_same_floats(gw: Gateway) -> None:
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    reply = await gw.client.embeddings.create(model=SMALL, input="hello")
    assert gw.fake.requests_to(EMBEDDINGS_PATH)[0].body["encoding_format"] == "base64"
    expected = fake_vector(UPSTREAM, "hello", 1536)
    assert np.array_equal(np.asarray(reply.data[0].embedding, dtype=np.float32), expected)


async def test_explicit_base64_is_little_endian_float32(gw: Gateway) -> None:
    raw = await gw.http.post(
        "/v1/embeddings", json={"model": LOCAL, "input": ["a b"], "encoding_format": "base64"}
    )
    assert raw.status_code == 200
    import base64

    data = raw.json()["data"][0]["embedding"]
    vector = np.frombuffer(base64.b64decode(data), dtype="<f4")
    assert vector.shape == (384,)
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-5


async def test_dimensions_is_a_requirement(gw: Gateway) -> None:
    # The cheapest model (local, 384) and ada (fixed 1536) cannot give 256 numbers.
    raw = await gw.client.embeddings.with_raw_response.create(
        model="auto", input="x", dimensions=256, encoding_format="float"
    )
    reply = raw.parse()
    assert raw.headers["x-modelyard-model"] == SMALL
    assert len(reply.data[0].embedding) == 256
    assert gw.fake.requests_to(EMBEDDINGS_PATH)[0].body["dimensions"] == 256
    [record] = await gw.ledger.records()
    rejected = {r["model"]: r["reason"] for r in record.reasons["rejected"]}
    assert rejected[LOCAL] == "returns 384 dimensions, not 256"
    assert rejected[ADA] == "returns 1536 dimensions, not 256"


async def test_a_fixed_size_model_is_never_sent_dimensions(gw: Gateway) -> None:
    # OpenAI's ada-002 refuses `dimensions`; it matches the native size, so drop it.
    reply = await gw.client.embeddings.create(model=ADA, input="x", dimensions=1536)
    assert len(reply.data[0].embedding) == 1536
    assert "dimensions" not in gw.fake.requests_to(EMBEDDINGS_PATH)[0].body


async def test_auto_picks_the_free_local_model_and_bills_zero(gw: Gateway) -> None:
    raw = await gw.client.embeddings.with_raw_response.create(
        model="auto", input=["one", "two", "three"]
    )
    reply = raw.parse()
    assert raw.headers["x-modelyard-model"] == LOCAL
    assert [len(d.embedding) for d in reply.data] == [384, 384, 384]
    assert raw.headers["x-modelyard-cost-usd"] == "0"
    assert gw.fake.requests_to(EMBEDDINGS_PATH) == []
    [record] = await gw.ledger.records()
    assert (record.deployment, record.cost_usd, record.endpoint) == ("here", 0, "embeddings")
    assert record.input_tokens == reply.usage.prompt_tokens == 3


async def test_confidential_data_stays_on_the_private_model(gw: Gateway) -> None:
    # `best` would rank the OpenAI models first; confidential data may not go there.
    raw = await gw.client.embeddings.with_raw_response.create(
        model="best",
        input="patient record 17",
        extra_headers={"x-modelyard-data-class": "confidential"},
    )
    assert raw.headers["x-modelyard-model"] == LOCAL
    assert gw.fake.requests_to(EMBEDDINGS_PATH) == []
    [record] = await gw.ledger.records()
    rejected = {r["model"]: r["reason"] for r in record.reasons["rejected"]}
    assert "data class 'confidential' not allowed" in rejected[SMALL]


async def test_cheapest_ranks_by_input_price(gw: Gateway) -> None:
    # Token ids rule out the local model: the cheapest remaining is SMALL, then BACKUP, ADA.
    raw = await gw.http.post(
        "/v1/route", json={"model": "auto", "messages": [{"role": "user", "content": "x"}]}
    )
    assert raw.status_code == 200  # chat routing is untouched by embeddings cards
    decision = raw.json()["decision"]
    assert all(c["model"] not in (SMALL, BACKUP, ADA, LOCAL) for c in decision["candidates"])
    reply = await gw.client.embeddings.with_raw_response.create(model="auto", input=[[1, 2, 3]])
    [record] = await gw.ledger.records()
    ranked = [c["model"] for c in record.reasons["candidates"]]
    assert ranked == [SMALL, BACKUP, ADA]
    assert reply.headers["x-modelyard-model"] == SMALL
    assert gw.fake.requests_to(EMBEDDINGS_PATH)[0].body["input"] == [[1, 2, 3]]


async def test_failing_upstream_falls_back_with_a_record_per_call(gw: Gateway) -> None:
    gw.fake.script.push(EMBEDDINGS_PATH, status=500, body={"error": {"message": "boom"}})
    raw = await gw.client.embeddings.with_raw_response.create(
        model="pinned", input=["a", "b"], encoding_format="float"
    )
    assert raw.headers["x-modelyard-model"] == BACKUP
    assert raw.headers["x-modelyard-failed-attempts"] == f"{SMALL}:ProviderServerError"
    reply = raw.parse()
    assert reply.data[1].embedding == fake_vector(UPSTREAM, "b", 1536).tolist()
    failed, served = await gw.ledger.records()
    assert (failed.model_id, failed.status, failed.attempt) == (SMALL, "error", 1)
    assert (served.model_id, served.status, served.attempt) == (BACKUP, "ok", 2)
    assert failed.decision_id == served.decision_id
    assert {failed.endpoint, served.endpoint} == {"embeddings"}
    assert failed.cost_usd == 0
    tokens = reply.usage.prompt_tokens
    assert served.cost_usd == cost(BACKUP, tokens) == Decimal(raw.headers["x-modelyard-cost-usd"])


async def test_a_malformed_answer_falls_back(gw: Gateway) -> None:
    one = {
        "object": "list",
        "model": UPSTREAM,
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    gw.fake.script.push(EMBEDDINGS_PATH, body=one)  # one short vector for two inputs
    raw = await gw.client.embeddings.with_raw_response.create(model="pinned", input=["a", "b"])
    assert raw.headers["x-modelyard-model"] == BACKUP
    failed, _ = await gw.ledger.records()
    assert failed.error_class == "ProviderResponseError"
    assert "1 vectors for 2 inputs" in (failed.error_message or "")


async def test_the_upstreams_own_400_is_returned(gw: Gateway) -> None:
    gw.fake.script.push(
        EMBEDDINGS_PATH,
        status=400,
        body={"error": {"message": "input too long", "type": "invalid_request_error"}},
    )
    with pytest.raises(openai.BadRequestError) as info:
        await gw.client.embeddings.create(model="pinned", input="x")
    assert "input too long" in info.value.message
    assert gw.backup.requests_to(EMBEDDINGS_PATH) == []  # the caller's fault: no fallback


async def test_every_model_failing_is_a_503_listing_them(gw: Gateway) -> None:
    gw.fake.script.push(EMBEDDINGS_PATH, status=503)
    gw.backup.script.push(EMBEDDINGS_PATH, status=502)
    with pytest.raises(openai.InternalServerError) as info:
        await gw.client.embeddings.create(model="pinned", input="x")
    assert info.value.status_code == 503
    assert SMALL in info.value.message
    assert BACKUP in info.value.message
    assert [r.status for r in await gw.ledger.records()] == ["error", "error"]


async def test_a_local_encoder_that_cannot_open_is_a_clear_provider_error(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.embeddings import registry
    from modelyard.errors import ConfigError

    def missing(name: str) -> None:
        raise ConfigError(f"encoder {name!r} needs the learned extra (pip install ...)")

    monkeypatch.setattr(registry, "load_encoder", missing)
    raw = await gw.http.post("/v1/embeddings", json={"model": LOCAL, "input": "x"})
    assert raw.status_code == 502
    error = raw.json()["error"]
    assert "cannot be opened" in error["message"]
    assert "needs the learned extra" in error["message"]
    [record] = await gw.ledger.records()
    assert (record.status, record.error_class) == ("error", "ProviderServerError")
