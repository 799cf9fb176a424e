"""The `specialist` adapter: label, JSON, stream, cost per call, escalation below threshold."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("sklearn")

from modelyard import plugins
from modelyard.errors import ConfigError, LowConfidenceError, ProviderServerError
from modelyard.providers.base import ChatProvider, DeploymentSettings
from modelyard.specialists.provider import SpecialistProvider
from modelyard.specialists.settings import SpecialistSettings
from modelyard.types import ChatRequest

CLEAR = "I was overcharged, refund the invoice"
VAGUE = "please help"


def request(text: str = CLEAR, **extra: Any) -> ChatRequest:
    body = {
        "messages": [
            {"role": "system", "content": "Classify the ticket."},
            {"role": "user", "content": text},
        ],
        **extra,
    }
    return ChatRequest.model_validate(body)


def provider(path: Path, threshold: float | None = 0.0, cost: str = "0") -> SpecialistProvider:
    return SpecialistProvider(
        SpecialistSettings(path, threshold, Decimal(cost)), deployment="specialist-intents"
    )


async def test_answers_with_the_label_its_confidence_and_the_cost_per_call(
    intents_dir: Path,
) -> None:
    p = provider(intents_dir, cost="0.00002")
    assert isinstance(p, ChatProvider)
    completion = await p.complete(request(), "intents")
    assert completion.content == "billing"
    assert completion.model == "intents"
    assert completion.confidence is not None
    assert 0.5 < completion.confidence <= 1
    assert completion.usage.cost_usd == Decimal("0.00002")
    assert completion.usage.input_tokens == 6  # the user's words, not the system prompt


async def test_json_object_and_json_schema_answers(intents_dir: Path) -> None:
    p = provider(intents_dir)
    as_object = await p.complete(request(response_format={"type": "json_object"}), "intents")
    body = json.loads(as_object.content or "")
    assert body["label"] == "billing"
    assert body["confidence"] == pytest.approx(as_object.confidence, abs=1e-4)
    schema = {
        "type": "object",
        "properties": {"intent": {"type": "string"}},
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    as_schema = await p.complete(request("my parcel is late", response_format=fmt), "intents")
    assert json.loads(as_schema.content or "") == {"intent": "shipping"}


async def test_stream_is_the_label_then_finish_then_usage(intents_dir: Path) -> None:
    chunks = [c async for c in provider(intents_dir, cost="0.001").stream(request(), "intents")]
    assert [c.content for c in chunks] == ["billing", None, None]
    assert chunks[1].finish_reason == "stop"
    assert chunks[2].usage is not None
    assert chunks[2].usage.cost_usd == Decimal("0.001")


async def test_below_the_threshold_it_raises_low_confidence_with_its_answer(
    intents_dir: Path,
) -> None:
    p = provider(intents_dir, threshold=0.9)
    with pytest.raises(LowConfidenceError) as info:
        await p.complete(request(VAGUE), "intents")
    exc = info.value
    assert exc.threshold == 0.9
    assert exc.confidence < 0.9
    assert exc.completion.confidence == exc.confidence
    assert exc.completion.content in ("billing", "shipping", "login")
    assert exc.provider == "specialist-intents"
    assert "low confidence: confidence" in exc.message
    assert "(threshold 0.900)" in exc.message
    with pytest.raises(LowConfidenceError):  # a stream escalates before any content
        [c async for c in p.stream(request(VAGUE), "intents")]


async def test_the_manifest_threshold_is_the_default(intents_dir: Path) -> None:
    p = provider(intents_dir, threshold=None)
    assert p.threshold == p.warm().manifest.threshold


async def test_a_broken_artifact_is_a_provider_failure_that_fails_over(tmp_path: Path) -> None:
    with pytest.raises(ProviderServerError, match="cannot be loaded") as info:
        await provider(tmp_path / "missing").complete(request(), "intents")
    assert info.value.retryable


def test_the_entry_point_builds_it_from_the_deployment_url(intents_dir: Path) -> None:
    url = SpecialistSettings(intents_dir, 0.7, Decimal("0.0001")).to_url()
    factory = plugins.load(plugins.ADAPTERS, "specialist")
    built = factory(DeploymentSettings(name="specialist-x", base_url=url), httpx.AsyncClient())
    assert isinstance(built, SpecialistProvider)
    assert built.settings == SpecialistSettings(intents_dir.resolve(), 0.7, Decimal("0.0001"))
    assert built.deployment == "specialist-x"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("https://example.com/x", "file: URL"),
        ("file:///tmp/x?min_confidence=2", "min_confidence must be in [0, 1]"),
        ("file:///tmp/x?cost_per_call_usd=-1", "cost_per_call_usd must be >= 0"),
        ("file:///tmp/x?cost_per_call_usd=abc", "must be numbers"),
        ("file:///tmp/x?colour=red", "unknown setting colour"),
    ],
)
def test_bad_deployment_urls_are_config_errors(url: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=r"deployments\.d") as info:
        SpecialistSettings.from_url(url, "d")
    assert needle in info.value.message
