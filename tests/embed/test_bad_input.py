"""Bad embeddings requests: each a 400 (or 404) in OpenAI's error shape, through the
official SDK, with no provider called and nothing billed."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from modelyard.embed.request import MAX_INPUTS
from modelyard.testing.upstream import EMBEDDINGS_PATH
from tests.embed.conftest import ADA, BACKUP, GPT, LOCAL, SMALL, Gateway


async def bad_request(gw: Gateway, **kwargs: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        await gw.client.embeddings.create(**{"model": "auto", **kwargs})
    assert info.value.status_code == 400
    assert isinstance(info.value.body, dict)
    assert set(info.value.body) == {"message", "type", "param", "code"}
    assert gw.fake.requests_to(EMBEDDINGS_PATH) == []
    assert await gw.ledger.records() == []
    return info.value


async def test_ten_thousand_inputs_is_over_the_documented_limit(gw: Gateway) -> None:
    error = await bad_request(gw, input=["word"] * 10_000)
    assert f"input has 10000 items; at most {MAX_INPUTS} per request" in error.message
    assert error.param == "input"


async def test_the_limit_itself_is_accepted(gw: Gateway) -> None:
    reply = await gw.client.embeddings.create(model=LOCAL, input=["w"] * MAX_INPUTS)
    assert len(reply.data) == MAX_INPUTS


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "input is an empty string"),
        (["fine", ""], "input[1] is an empty string"),
        ([], "input must not be an empty array"),
        ([[1, 2], []], "input[1] is an empty token array"),
        ([-1, 5], "input has a negative token id"),
    ],
)
async def test_empty_inputs_are_refused(gw: Gateway, given: Any, says: str) -> None:
    error = await bad_request(gw, input=given)
    assert says in error.message
    assert error.param == "input"


async def test_dimensions_no_model_supports(gw: Gateway) -> None:
    error = await bad_request(gw, input="x", dimensions=5000)
    assert error.code == "no_qualified_model"
    assert "returns 1-1536 dimensions, not 5000" in error.message
    assert "returns 384 dimensions, not 5000" in error.message
    assert "not an embeddings model" in error.message  # the chat model, named too


async def test_token_ids_for_the_local_model(gw: Gateway) -> None:
    error = await bad_request(gw, model=LOCAL, input=[[101, 2023, 102]])
    assert f"{LOCAL}: takes text only, not token ids" in error.message


async def test_an_input_longer_than_every_model_reads(gw: Gateway) -> None:
    error = await bad_request(gw, input="word " * 9000)
    assert "reads at most 8191 tokens per input" in error.message
    assert "reads at most 256 tokens per input" in error.message


async def test_a_chat_model_serves_no_embeddings(gw: Gateway) -> None:
    error = await bad_request(gw, model=GPT, input="x")
    assert f"{GPT}: not an embeddings model" in error.message


async def test_an_embeddings_model_serves_no_chat(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await gw.client.chat.completions.create(
            model=SMALL, messages=[{"role": "user", "content": "hi"}]
        )
    assert f"{SMALL}: an embeddings model (serves /v1/embeddings only)" in info.value.message
    # ... and `auto` never ranks one for chat.
    decision = (
        await gw.http.post("/v1/route", json={"messages": [{"role": "user", "content": "hi"}]})
    ).json()["decision"]
    assert [c["model"] for c in decision["candidates"]] == [GPT]
    rejected = {r["model"] for r in decision["rejected"]}
    assert rejected == {SMALL, BACKUP, ADA, LOCAL}


async def test_a_council_policy_is_refused(gw: Gateway) -> None:
    error = await bad_request(gw, model="council", input="x")
    assert "single-call policy" in error.message
    assert error.param == "model"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"model": "auto"}, "input"),
        ({"input": 5}, "input"),
        ({"input": ["a", 1]}, "input"),
        ({"input": [1.5]}, "input"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "dimensions": "8"}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
async def test_malformed_bodies(gw: Gateway, body: dict[str, Any], says: str) -> None:
    raw = await gw.http.post("/v1/embeddings", json=body)
    assert raw.status_code == 400
    error = raw.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert says in error["message"]
    assert await gw.ledger.records() == []


async def test_unknown_model_is_a_404(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await gw.client.embeddings.create(model="nope", input="x")
    assert "unknown model 'nope'" in info.value.message


async def test_text_the_ledger_could_not_store_is_refused_at_the_door(gw: Gateway) -> None:
    raw = await gw.http.post("/v1/embeddings", json={"input": ["ok", "a\u0000b"]})
    assert raw.status_code == 400
    assert "input" in raw.json()["error"]["message"]
    assert gw.fake.requests_to(EMBEDDINGS_PATH) == []
