"""The pure parts: OpenAI embeddings bodies in and out, base64 float32, the card's
embeddings block in config, and the filter's reasons."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from modelyard.catalog.cards import EmbeddingSpec
from modelyard.config import parse
from modelyard.embed.request import EmbeddingRequest
from modelyard.embed.result import EmbeddingResult, from_base64, from_floats, to_base64
from modelyard.embed.runner import check_vectors
from modelyard.errors import ConfigError, ProviderResponseError
from modelyard.providers.openai_embed import build_embeddings_body, parse_embeddings
from modelyard.types import Usage
from tests.embed.conftest import STACK


def test_base64_is_little_endian_float32_both_ways() -> None:
    values = [0.5, -1.25, 3.0e-8]
    text = base64.b64encode(struct.pack("<3f", *values)).decode()
    vector = from_base64(text)
    assert vector.typecode == "f"
    assert vector.tolist() == pytest.approx(values, rel=1e-7)
    assert to_base64(vector) == text
    # JSON doubles go out as float32, as OpenAI's base64 is.
    assert to_base64(from_floats(values)) == text


@pytest.mark.parametrize("text", ["AAAA=", "not base64!", base64.b64encode(b"abc").decode()])
def test_bad_base64_is_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - binascii.Error is a ValueError
        from_base64(text)


def test_body_keeps_the_input_shape_and_passes_unknown_parameters() -> None:
    request = EmbeddingRequest.model_validate(
        {
            "model": "auto",
            "input": [[1, 2], [3]],
            "user": "u1",
            "encoding_format": "base64",
            "truncate_prompt_tokens": 100,
            "modelyard": {"data_class": "public"},
        }
    )
    body = build_embeddings_body(request, "e5", dimensions=None)
    assert body == {
        "model": "e5",
        "input": [[1, 2], [3]],
        "user": "u1",
        "encoding_format": "base64",
        "truncate_prompt_tokens": 100,
    }
    assert build_embeddings_body(request, "e5", dimensions=64)["dimensions"] == 64


def _answer(*items: Any, usage: Any = None) -> dict[str, Any]:
    return {"object": "list", "data": list(items), "model": "m", "usage": usage}


def test_vectors_come_back_in_input_order_by_index() -> None:
    b64 = base64.b64encode(struct.pack("<2f", 1.0, 0.0)).decode()
    data = _answer(
        {"index": 1, "embedding": b64},
        {"index": 0, "embedding": [0.0, 1.0]},
        usage={"prompt_tokens": 7, "total_tokens": 7},
    )
    result = parse_embeddings(data, expected=2, provider="p")
    assert [v.tolist() for v in result.vectors] == [[0.0, 1.0], [1.0, 0.0]]
    assert result.usage == Usage(input_tokens=7)


def test_missing_usage_is_none_so_the_attempt_bills_an_estimate() -> None:
    result = parse_embeddings(_answer({"index": 0, "embedding": [1.0]}), expected=1, provider="p")
    assert result.usage is None


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"error": "x"}, "no 'data' list"),
        (_answer({"index": 0, "embedding": [1.0]}), "1 vectors for 2 inputs"),
        (_answer({"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}), "index 0"),
        (_answer({"index": 0, "embedding": [1.0]}, {"index": 5, "embedding": [1.0]}), "index 5"),
        (_answer({"index": 0, "embedding": []}, {"index": 1, "embedding": [1.0]}), "not a list"),
        (_answer({"index": 0, "embedding": ["a"]}, {"index": 1, "embedding": [1]}), "embedding"),
        (_answer({"index": 0, "embedding": [True]}, {"index": 1, "embedding": [1]}), "not a list"),
        (_answer("x", {"index": 1, "embedding": [1]}), "not an object"),
    ],
)
def test_malformed_answers_are_retryable_errors(data: Any, says: str) -> None:
    with pytest.raises(ProviderResponseError) as info:
        parse_embeddings(data, expected=2, provider="p")
    assert says in info.value.message
    assert info.value.retryable


def test_wrong_size_or_non_finite_vectors_are_caught() -> None:
    good = EmbeddingResult((from_floats([0.6, 0.8]),), Usage(1), "m")
    check_vectors(good, 2, "p")
    with pytest.raises(ProviderResponseError, match="has 2 dimensions, expected 3"):
        check_vectors(good, 3, "p")
    bad = EmbeddingResult((from_floats([float("nan"), 0.8]),), Usage(1), "m")
    with pytest.raises(ProviderResponseError, match="non-finite"):
        check_vectors(bad, 2, "p")


def test_spec_supports_shortening_only_when_it_says_so() -> None:
    assert EmbeddingSpec(1536, shortenable=True).supports(256)
    assert not EmbeddingSpec(1536, shortenable=True).supports(1537)
    assert EmbeddingSpec(384).supports(384)
    assert not EmbeddingSpec(384).supports(256)


def _with_model(card: dict[str, Any], deployment: str = "fake") -> dict[str, Any]:
    return {
        **STACK,
        "models": {"m": {"deployment": deployment, **card}},
        "policies": {"auto": {"type": "cheapest"}},
    }


def test_an_embeddings_card_defaults_its_capability_and_output() -> None:
    config = parse(_with_model({"embeddings": {"dimensions": 8}, "context_window": 512}), "s.yaml")
    card = config.models["m"]
    assert [c.value for c in card.capabilities] == ["embeddings"]
    assert card.max_output_tokens == 1


@pytest.mark.parametrize(
    ("card", "deployments", "says"),
    [
        (
            {
                "embeddings": {"dimensions": 8},
                "capabilities": ["embeddings", "text"],
                "context_window": 9,
            },
            None,
            "only capability is 'embeddings'",
        ),
        (
            {"capabilities": ["embeddings"], "context_window": 9, "max_output_tokens": 9},
            None,
            "needs an embeddings block",
        ),
        ({"embeddings": {"dimensions": 0}, "context_window": 9}, None, "embeddings.dimensions"),
        (
            {"embeddings": {"dimensions": 8}, "context_window": 9},
            {"fake": {"adapter": "anthropic", "base_url": "https://a.example"}},
            "adapter 'anthropic' of deployment 'fake' does not serve embeddings",
        ),
    ],
)
def test_config_mistakes_stop_start_up(card: Any, deployments: Any, says: str) -> None:
    data = _with_model(card)
    if deployments:
        data["deployments"] = deployments
    with pytest.raises(ConfigError) as info:
        parse(data, "s.yaml")
    assert "s.yaml: models.m" in info.value.message
    assert says in info.value.message
