"""Hostile input at the door: a 400 naming the field, never a 500, never a call made."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from modelyard.errors import ProviderAuthError
from modelyard.ledger import InMemoryLedger
from modelyard.providers.base import DeploymentSettings
from modelyard.providers.function import FunctionProvider
from modelyard.providers.openai import OpenAIChatAdapter
from modelyard.types import ChatRequest

HELLO = '[{"role":"user","content":"hello"}]'


async def post_raw(client: httpx.AsyncClient, body: str, **headers: str) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        content=body.encode("utf-8", "surrogatepass"),
        headers={"content-type": "application/json", **headers},
    )


def assert_openai_error(response: httpx.Response, status: int, param: str | None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    return str(error["message"])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ('{"user":"a\\u0000b","stream":true,"messages":' + HELLO + "}", "user"),
        ('{"user":"a\\u0000b","messages":' + HELLO + "}", "user"),
        ('{"messages":[{"role":"user","content":"x\\ud800"}]}', "messages.0.content"),
        ('{"model":"\\udfff","messages":' + HELLO + "}", "model"),
        ('{"user":"\\ud800","messages":' + HELLO + "}", "user"),
        ('{"modelyard":{"task":"\\ud83d"},"messages":' + HELLO + "}", "modelyard.task"),
        ('{"seed":NaN,"messages":' + HELLO + "}", "seed"),
        ('{"logit_bias":{"1":Infinity},"messages":' + HELLO + "}", "logit_bias.1"),
        ('{"temperature":-Infinity,"messages":' + HELLO + "}", "temperature"),
        ('{"seed":1e999,"messages":' + HELLO + "}", "seed"),
    ],
    ids=[
        "nul-stream",
        "nul",
        "surrogate-content",
        "surrogate-model",
        "surrogate-user",
        "surrogate-task",
        "nan",
        "infinity-nested",
        "minus-infinity",
        "overflowing-literal",
    ],
)
async def test_unstorable_or_non_finite_input_is_refused_naming_the_field(
    client: httpx.AsyncClient,
    ledger: InMemoryLedger,
    providers: dict[str, FunctionProvider],
    body: str,
    param: str,
) -> None:
    message = assert_openai_error(await post_raw(client, body), 400, param)
    assert param in message
    assert await ledger.records() == []
    assert all(not p.calls for p in providers.values())


async def test_a_surrogate_in_a_key_is_refused_and_the_error_still_renders(
    client: httpx.AsyncClient, ledger: InMemoryLedger
) -> None:
    response = await post_raw(client, '{"\\ud800x":1,"messages":' + HELLO + "}")
    message = assert_openai_error(response, 400, "body")
    assert "surrogate" in message
    assert await ledger.records() == []


async def test_a_valid_astral_character_is_fine(client: httpx.AsyncClient) -> None:
    body = '{"model":"cheap","messages":[{"role":"user","content":"\\ud83d\\ude00 hi"}]}'
    assert (await post_raw(client, body)).status_code == 200


async def test_deep_nesting_is_refused(client: httpx.AsyncClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    response = await post_raw(client, '{"metadata":' + deep + ',"messages":' + HELLO + "}")
    assert_openai_error(response, 400, response.json()["error"]["param"])
    moderately = "[" * 70 + "]" * 70
    response = await post_raw(client, '{"metadata":' + moderately + ',"messages":' + HELLO + "}")
    assert "nested" in assert_openai_error(response, 400, response.json()["error"]["param"])


async def test_a_huge_integer_is_a_400_not_a_500(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, '{"seed":' + "9" * 5000 + ',"messages":' + HELLO + "}")
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_oversized_headers_get_an_openai_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"x-padding": "a" * 100_000},
    )
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "request_header_fields_too_large"


@pytest.mark.parametrize("value", [b"a\x00b", b"x" * 200, b"has space"])
async def test_a_bad_request_id_is_refused(
    client: httpx.AsyncClient, ledger: InMemoryLedger, value: bytes
) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers=[(b"x-request-id", value)],
    )
    assert_openai_error(response, 400, "x-request-id")
    assert await ledger.records() == []


async def test_response_ids_carry_one_chatcmpl_prefix(
    client: httpx.AsyncClient, providers: dict[str, FunctionProvider]
) -> None:
    async def complete(request: ChatRequest, upstream: str) -> Any:
        from modelyard.types import Completion

        return Completion("chatcmpl-upstream1", upstream, "ok")

    for name in providers:
        providers[name].complete_fn = complete
    body = (
        await client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
        )
    ).json()
    assert body["id"] == "chatcmpl-upstream1"


async def test_upstream_text_with_lone_surrogates_still_renders(
    client: httpx.AsyncClient, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    from modelyard.types import Completion

    async def complete(request: ChatRequest, upstream: str) -> Completion:
        return Completion("c1", upstream, "bad \ud800 text")

    for name in providers:
        providers[name].complete_fn = complete
    response = await client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 200
    assert json.loads(response.text)["choices"][0]["message"]["content"] == "bad \ud800 text"
    assert len(await ledger.records()) == 1


@pytest.mark.parametrize("before", [170, 185, 192, 199])
async def test_a_key_near_the_excerpt_cut_is_redacted_whole(before: int) -> None:
    key = "sk-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    for body in (
        "x" * before + key + "y" * 50,  # plain text: cut at 200 characters
        json.dumps({"error": {"message": "m" * (before + 1800) + key + "tail"}}),  # at 2000
    ):

        def handler(_: httpx.Request, body: str = body) -> httpx.Response:
            return httpx.Response(401, text=body)

        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        adapter = OpenAIChatAdapter(
            DeploymentSettings(name="up", base_url="http://up/v1", api_key=key), client
        )
        chat = ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}]})
        with pytest.raises(ProviderAuthError) as caught:
            await adapter.complete(chat, "m")
        for prefix in (key[:8], key[:12], key[:20]):
            assert prefix not in caught.value.message
