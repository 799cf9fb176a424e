"""Keys on `/v1/messages`: `x-api-key` (Anthropic's header) authenticates as well as
`Authorization: Bearer`; refusals come back in Anthropic's error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.budgets.conftest import Gateway, make_gateway
from tests.budgets.test_gateway import key
from tests.server.messages.test_messages_errors import assert_anthropic_error

HELLO = {"model": "small", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def keyed() -> AsyncIterator[Gateway]:
    gw = await make_gateway()
    yield gw
    await gw.client.aclose()
    await gw.budgets.close()
    await gw.ledger.close()


async def post(gw: Gateway, headers: dict[str, str], body: Any = HELLO) -> Any:
    return await gw.client.post("/v1/messages", json=body, headers=headers)


async def test_x_api_key_and_bearer_both_authenticate(keyed: Gateway) -> None:
    secret = await key(keyed, models=["small"])
    for headers in ({"x-api-key": secret}, {"authorization": f"Bearer {secret}"}):
        response = await post(keyed, headers)
        assert response.status_code == 200, response.text
        assert response.json()["type"] == "message"
    records = await keyed.ledger.records()
    assert len(records) == 2
    assert {r.key_id for r in records} != {None}


async def test_x_api_key_wins_over_a_junk_authorization(keyed: Gateway) -> None:
    secret = await key(keyed, models=["small"])
    response = await post(keyed, {"x-api-key": secret, "authorization": "Bearer junk"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "sk-ant-not-ours"}, {"authorization": "Token abc"}],
    ids=["missing", "not ours", "malformed"],
)
async def test_refused_keys_are_anthropic_401s(keyed: Gateway, headers: dict[str, str]) -> None:
    await key(keyed, models=["small"])
    response = await post(keyed, headers)
    assert_anthropic_error(response, 401, "authentication_error")
    count = await keyed.client.post(
        "/v1/messages/count_tokens",
        json={"model": "small", "messages": HELLO["messages"]},
        headers=headers,
    )
    assert_anthropic_error(count, 401, "authentication_error")
    # Chat completions keep the OpenAI shape for the same refusal.
    chat = await keyed.client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert chat.status_code == 401
    assert chat.json()["error"]["type"] == "invalid_request_error"


async def test_a_model_outside_the_key_is_a_permission_error(keyed: Gateway) -> None:
    secret = await key(keyed, models=["small"])
    response = await post(keyed, {"x-api-key": secret}, {**HELLO, "model": "frontier"})
    assert_anthropic_error(response, 403, "permission_error", "frontier")
    assert await keyed.ledger.records() == []
