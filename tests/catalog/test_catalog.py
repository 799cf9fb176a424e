"""Catalog: prices from genai-prices unless the card overrides them; availability by key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modelyard.catalog.catalog import build_catalog
from modelyard.catalog.defaults import default_config
from modelyard.catalog.prices import card_prices, library_prices
from modelyard.catalog.tokens import count_text, estimate_prompt_tokens, tokenizer_name
from modelyard.config import parse
from modelyard.errors import ConfigError
from modelyard.types import ChatRequest, Message, Usage
from tests.stack import ENV, STACK, stack_config


def test_library_prices_are_exact_decimals_for_known_models() -> None:
    prices = library_prices("gpt-5-mini", "openai")
    assert prices is not None
    assert prices.source == "genai-prices"
    assert (prices.input, prices.output, prices.cached_input) == (
        Decimal("0.25"),
        Decimal("2"),
        Decimal("0.025"),
    )
    assert library_prices("no-such-model-xyz", "openai") is None


def test_card_price_overrides_library_and_source_is_visible() -> None:
    data = {
        "deployments": {"openai": {"adapter": "openai", "base_url": "https://api.openai.com/v1"}},
        "models": {
            "gpt-5-mini": {
                "deployment": "openai",
                "context_window": 1000,
                "max_output_tokens": 100,
                "prices": {"input": "9", "output": "9"},
            },
            "gpt-5-nano": {
                "deployment": "openai",
                "context_window": 1000,
                "max_output_tokens": 100,
            },
        },
        "policies": {"auto": {"type": "cheapest"}},
    }
    catalog = build_catalog(parse(data, "t.yaml"), {})
    assert catalog.cards["gpt-5-mini"].prices.source == "card"
    assert catalog.cards["gpt-5-mini"].prices.input == Decimal("9")
    assert catalog.cards["gpt-5-mini"].prices.cached_input == Decimal("9")
    assert catalog.cards["gpt-5-nano"].prices.source == "genai-prices"


def test_unknown_remote_model_without_prices_fails_at_start_up() -> None:
    data = {
        "deployments": {"x": {"adapter": "openai", "base_url": "https://api.example.com/v1"}},
        "models": {
            "mystery-1": {"deployment": "x", "context_window": 1000, "max_output_tokens": 10}
        },
        "policies": {"auto": {"type": "cheapest"}},
    }
    with pytest.raises(
        ConfigError, match=r"t\.yaml: models\.mystery-1\.prices: .*state the prices"
    ):
        build_catalog(parse(data, "t.yaml"), {}, "t.yaml")


def test_local_models_without_prices_are_free() -> None:
    catalog = build_catalog(stack_config(), ENV)
    card = catalog.cards["local-llm"]
    assert card.prices.source == "free"
    assert card.prices.cost(Usage(input_tokens=10_000, output_tokens=10_000)) == 0


def test_cost_is_exact_and_cached_tokens_use_the_cached_rate() -> None:
    prices = card_prices(Decimal("1.00"), Decimal("4.00"), Decimal("0.25"))
    usage = Usage(input_tokens=1_000, output_tokens=500, cached_input_tokens=400)
    # 600 * 1.00 + 400 * 0.25 + 500 * 4.00 = 2700 per million
    assert prices.cost(usage) == Decimal("0.002700000")


def test_library_cost_is_tier_aware() -> None:
    prices = library_prices("claude-sonnet-4-5", "anthropic")
    assert prices is not None
    small = prices.cost(Usage(input_tokens=100_000, output_tokens=0))
    large = prices.cost(Usage(input_tokens=300_000, output_tokens=0))
    assert small == Decimal("0.3")
    assert large > Decimal("0.9")  # above 200k tokens the whole prompt is billed at the higher tier


def test_availability_follows_key_variables() -> None:
    catalog = build_catalog(stack_config(), {"CHEAP_KEY": "k"})
    assert catalog.unavailable == {"bigco": "BIG_KEY is not set"}
    assert catalog.missing_keys() == ["BIG_KEY"]
    assert catalog.is_available(catalog.cards["small"])
    assert not catalog.is_available(catalog.cards["frontier"])


def test_resolve_by_id_alias_and_unique_upstream_name() -> None:
    catalog = build_catalog(default_config(), {})
    assert catalog.resolve("openai/gpt-5-mini") is catalog.cards["openai/gpt-5-mini"]
    assert catalog.resolve("gpt-5-mini") is catalog.cards["openai/gpt-5-mini"]
    assert catalog.resolve("balanced") is catalog.cards["anthropic/claude-sonnet-4-5"]
    assert catalog.resolve("nonexistent") is None
    assert build_catalog(parse(STACK, "t"), ENV).resolve("cheap") is not None


def test_tokenizer_runs_offline_with_real_bpe() -> None:
    assert tokenizer_name() == "cl100k_base (offline)"
    assert count_text("hello world") == 2
    assert count_text("") == 0


def test_prompt_estimate_counts_messages_images_and_family() -> None:
    text = ChatRequest(messages=[Message(role="user", content="hello world")])
    assert estimate_prompt_tokens(text) == 3 + 3 + 2
    with_image = ChatRequest.model_validate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hello world"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                }
            ]
        }
    )
    assert estimate_prompt_tokens(with_image) == 8 + 765
    assert estimate_prompt_tokens(text, "anthropic") > estimate_prompt_tokens(text, "openai")
