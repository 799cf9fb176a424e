"""Gemini models in the built-in catalog, on the native Gemini adapter."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from modelyard.catalog.catalog import build_catalog
from modelyard.catalog.defaults import default_config
from modelyard.engine import build_providers
from modelyard.errors import ProviderServerError
from modelyard.providers.gemini import GeminiAdapter
from modelyard.types import Capability, ChatRequest

GEMINI_MODELS = {
    # model id: (input, output, cached input) $ per million tokens, from genai-prices
    "google/gemini-2.5-pro": ("1.25", "10", "0.125"),
    "google/gemini-2.5-flash": ("0.3", "2.5", "0.03"),
    "google/gemini-2.5-flash-lite": ("0.1", "0.4", "0.01"),
    "google/gemini-2.0-flash": ("0.1", "0.4", "0.025"),
}


@pytest.mark.parametrize(("model", "prices"), GEMINI_MODELS.items())
def test_gemini_models_are_first_class(model: str, prices: tuple[str, str, str]) -> None:
    card = build_catalog(default_config(), {"GEMINI_API_KEY": "k"}).cards[model]
    assert card.deployment.adapter == "gemini"
    assert card.deployment.base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert card.upstream == model.removeprefix("google/")
    assert card.prices.source == "genai-prices"
    assert (card.prices.input, card.prices.output, card.prices.cached_input) == tuple(
        Decimal(p) for p in prices
    )
    wanted = {Capability.VISION, Capability.TOOLS, Capability.JSON_SCHEMA, Capability.STREAMING}
    assert wanted <= card.capabilities
    assert card.context_window == 1048576


@pytest.mark.parametrize("variable", ["GEMINI_API_KEY", "GOOGLE_API_KEY"])
def test_either_key_variable_enables_gemini(variable: str) -> None:
    catalog = build_catalog(default_config(), {variable: "AIza-test"})
    assert "google" not in catalog.unavailable


def test_without_either_key_gemini_is_disabled_and_both_are_named() -> None:
    catalog = build_catalog(default_config(), {})
    assert catalog.unavailable["google"] == "none of GEMINI_API_KEY, GOOGLE_API_KEY is set"
    assert "GEMINI_API_KEY" in catalog.missing_keys()


async def test_the_first_set_variable_is_the_key_the_adapter_gets() -> None:
    config = default_config()
    env = {"GEMINI_API_KEY": "first", "GOOGLE_API_KEY": "second"}
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-goog-api-key"])
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        providers = build_providers(build_catalog(config, env), config, env, client)
        provider = providers["google"]
        assert isinstance(provider, GeminiAdapter)
        with pytest.raises(ProviderServerError):
            await provider.complete(ChatRequest(messages=[{"role": "user", "content": "x"}]), "m")
    assert seen == ["first"]
    assert config.deployments["google"].key_from({"GOOGLE_API_KEY": "only"}) == "only"
