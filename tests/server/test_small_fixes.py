"""Issue 14's small fixes on the server: `GET /v1/models/{id}` and the tokenizer
loaded at start-up."""

from __future__ import annotations

import httpx

from modelyard.catalog import tokens
from modelyard.engine import Engine
from modelyard.server.app import create_app


async def test_retrieve_a_model_in_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/small")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["object"]) == ("small", "model")
    assert body["modelyard"]["context_window"] > 0
    listed = (await client.get("/v1/models")).json()["data"]
    assert body == next(m for m in listed if m["id"] == "small")


async def test_retrieve_an_alias_or_policy_and_a_slashed_id(client: httpx.AsyncClient) -> None:
    alias = await client.get("/v1/models/cheap")
    assert alias.status_code == 200
    assert alias.json()["owned_by"] == "modelyard"
    slashed = await client.get("/v1/models/no/such-model")
    assert slashed.status_code == 404


async def test_unknown_model_is_a_404_in_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/gpt-nonexistent")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["type"] == "invalid_request_error"
    assert "gpt-nonexistent" in error["message"]


async def test_the_tokenizer_loads_at_start_up_not_on_the_first_request(engine: Engine) -> None:
    tokens._encoder.cache_clear()
    app = create_app(engine)
    assert tokens._encoder.cache_info().currsize == 0
    async with app.router.lifespan_context(app):
        # Loaded before any request arrives.
        assert tokens._encoder.cache_info().currsize == 1
        assert tokens._encoder() is not None
