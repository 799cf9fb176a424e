"""Gemini end to end over real sockets: the fake Gemini upstream checked with Google's
own SDK, then the gateway (openai SDK as its client) routing to it, falling back
from it, and billing every attempt in the ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from modelyard.app_factory import load_stack
from modelyard.ledger import CallRecord, open_ledger
from modelyard.testing.faults import Fault
from modelyard.testing.upstream import (
    GEMINI_PATH,
    OPENAI_PATH,
    FakeUpstream,
    RecordedRequest,
    create_fake_upstream,
)
from modelyard.testing.upstream_gemini import blocked_prompt, safety_stop_stream
from tests.e2e.conftest import LiveServer

GEMINI_KEY = "AIzaSy-e2e-gemini-0123456789abcdefXYZ"
OPENAI_KEY = "sk-e2e-openai-for-gemini-0123456789"
GEMINI = "acme/gemini-test"
GPT = "acme/gpt-fallback"
PRICES = {
    GEMINI: {"input": Decimal("0.30"), "output": Decimal("2.50"), "cached_input": Decimal("0.03")},
    GPT: {"input": Decimal("0.15"), "output": Decimal("0.60"), "cached_input": Decimal("0.075")},
}
THOUGHTS = 40
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
    "hQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclass
class Pair:
    upstream: FakeUpstream
    upstream_url: str
    gateway_url: str
    ledger_path: Path


def _card(model: str, deployment: str, upstream: str, quality: float) -> dict[str, Any]:
    return {
        "deployment": deployment,
        "upstream": upstream,
        "family": "google" if model == GEMINI else "openai",
        "capabilities": ["text", "vision", "tools", "json_schema", "json_mode", "streaming"],
        "context_window": 1_000_000,
        "max_output_tokens": 16000,
        "prices": {k: str(v) for k, v in PRICES[model].items()},
        "quality": {"default": quality},
    }


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("gemini-e2e")
    state = FakeUpstream(openai_key=OPENAI_KEY, gemini_key=GEMINI_KEY, gemini_thoughts=THOUGHTS)
    upstream = LiveServer(create_fake_upstream(state), "fake-gemini-upstream")
    upstream.start()
    config = {
        "deployments": {
            "fake-gemini": {
                "adapter": "gemini",
                "base_url": f"{upstream.url}/v1beta",
                "api_key_env": ["E2E_GEMINI_KEY", "E2E_GOOGLE_KEY"],
                "timeout_s": 10,
            },
            "fake-openai": {
                "adapter": "openai",
                "base_url": f"{upstream.url}/v1",
                "api_key_env": "E2E_OPENAI_KEY",
                "timeout_s": 10,
            },
        },
        "models": {
            GEMINI: _card(GEMINI, "fake-gemini", "gemini-2.5-flash", 0.9),
            GPT: _card(GPT, "fake-openai", "gpt-test", 0.5),
        },
        "policies": {
            "auto": {"type": "fixed", "model": GEMINI},
            "gemini-first": {"type": "fixed", "model": GEMINI, "fallback": [GPT]},
        },
        "default_policy": "auto",
        "resilience": {"breaker": {"failure_threshold": 1000}},
    }
    path = tmp / "stack.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    # The key comes from the second variable named: the first is unset.
    env = {"E2E_GOOGLE_KEY": GEMINI_KEY, "E2E_OPENAI_KEY": OPENAI_KEY}
    stack = load_stack(str(path), (), env)
    ledger_path = tmp / "ledger.db"
    gateway = LiveServer(stack.create_app(open_ledger(f"sqlite:///{ledger_path}")), "gateway")
    try:
        gateway.start()
        yield Pair(state, upstream.url, gateway.url, ledger_path)
    finally:
        gateway.stop()
        upstream.stop()


@pytest.fixture(scope="module")
def client(pair: Pair) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{pair.gateway_url}/v1", api_key="anything", max_retries=0, timeout=20
    ) as sdk:
        yield sdk


def last_gemini(pair: Pair) -> RecordedRequest:
    return pair.upstream.requests_to(GEMINI_PATH)[-1]


def records_for(pair: Pair, decision: str) -> list[CallRecord]:
    async def read() -> list[CallRecord]:
        ledger = open_ledger(f"sqlite:///{pair.ledger_path}")
        await ledger.open()
        try:
            return [r for r in await ledger.records(limit=100_000) if r.decision_id == decision]
        finally:
            await ledger.close()

    return sorted(asyncio.run(read()), key=lambda r: r.attempt)


def gemini_cost(usage: dict[str, Any]) -> Decimal:
    """The card's prices on the usage the fake reported, thinking billed as output."""
    p = PRICES[GEMINI]
    cached = usage.get("cachedContentTokenCount", 0)
    output = usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)
    total = (usage["promptTokenCount"] - cached) * p["input"] + output * p["output"]
    total += cached * p["cached_input"]
    return (total / Decimal(1_000_000)).quantize(Decimal("1e-9"), rounding=ROUND_HALF_EVEN)


def assert_one_ok_record(pair: Pair, decision: str, streamed: bool = False) -> CallRecord:
    usage = last_gemini(pair).usage
    assert usage is not None
    [record] = records_for(pair, decision)
    assert record.status == "ok"
    assert record.model_id == GEMINI
    assert record.streamed is streamed
    assert record.input_tokens == usage["promptTokenCount"]
    assert record.output_tokens == usage["candidatesTokenCount"] + THOUGHTS
    assert record.cost_usd == gemini_cost(usage)
    return record


# --- the fake, checked with Google's SDK --------------------------------------------


def test_google_genai_sdk_parses_the_fakes_answers(pair: Pair) -> None:
    sdk = genai.Client(
        api_key=GEMINI_KEY,
        http_options=types.HttpOptions(base_url=pair.upstream_url, api_version="v1beta"),
    )
    answer = sdk.models.generate_content(
        model="gemini-2.5-flash",
        contents="hello",
        config=types.GenerateContentConfig(system_instruction="be brief", temperature=0.2),
    )
    assert answer.text == "echo: hello"
    assert answer.usage_metadata is not None
    assert answer.usage_metadata.thoughts_token_count == THOUGHTS
    assert answer.candidates is not None
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    pieces = list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="hi there"))
    assert "".join(p.text or "" for p in pieces) == "echo: hi there"
    assert last_gemini(pair).url.endswith(":streamGenerateContent?alt=sse")
    weather = types.FunctionDeclaration(
        name="get_weather",
        parameters=types.Schema(
            type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}
        ),
    )
    called = sdk.models.generate_content(
        model="gemini-2.5-flash",
        contents="weather?",
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[weather])],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    assert called.function_calls is not None
    assert called.function_calls[0].args == {"city": "Paris"}


def test_google_genai_sdk_reads_the_fakes_errors(pair: Pair) -> None:
    pair.upstream.script.push_fault(GEMINI_PATH, Fault.rate_limited(3))
    sdk = genai.Client(
        api_key=GEMINI_KEY,
        http_options=types.HttpOptions(base_url=pair.upstream_url, api_version="v1beta"),
    )
    with pytest.raises(genai_errors.ClientError) as caught:
        sdk.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    bad = genai.Client(
        api_key="AIza-wrong",
        http_options=types.HttpOptions(base_url=pair.upstream_url, api_version="v1beta"),
    )
    with pytest.raises(genai_errors.ClientError) as refused:
        bad.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert refused.value.code == 400


# --- the gateway routing to Gemini ----------------------------------------------------


def test_text_answer_routed_to_gemini_and_billed(client: openai.OpenAI, pair: Pair) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "echo: hi"
    assert raw.headers["x-modelyard-model"] == GEMINI
    sent = last_gemini(pair)
    assert sent.url == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "[redacted]"  # present, and recorded redacted
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.usage is not None
    assert answer.usage is not None
    assert answer.usage.completion_tokens == sent.usage["candidatesTokenCount"] + THOUGHTS
    assert_one_ok_record(pair, raw.headers["x-modelyard-decision"])


def test_streamed_answer_from_gemini(client: openai.OpenAI, pair: Pair) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "tell me more"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: tell me more"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert last_gemini(pair).url.endswith(":streamGenerateContent?alt=sse")
    assert_one_ok_record(pair, raw.headers["x-modelyard-decision"], streamed=True)


def test_tool_call_and_tool_result_round_trip(client: openai.OpenAI, pair: Pair) -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.chat.completions.create(
        model="auto", messages=[question], tools=[WEATHER], tool_choice="required"
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert last_gemini(pair).body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    second = client.chat.completions.create(
        model="auto",
        messages=[
            question,
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert second.choices[0].message.content == "tool said: sunny"
    turns = last_gemini(pair).body["contents"]
    assert turns[-1]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}
    ]


def test_image_reaches_gemini_as_inline_data(client: openai.OpenAI, pair: Pair) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    answer = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
    )
    assert answer.choices[0].message.content == "echo: What is this?"
    parts = last_gemini(pair).body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}


def test_json_schema_answer(client: openai.OpenAI, pair: Pair) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "plan"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "plan", "schema": schema, "strict": True},
        },
    )
    assert json.loads(answer.choices[0].message.content or "") == {"city": "Paris", "days": 1}
    config = last_gemini(pair).body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["type"] == "OBJECT"


# --- failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.rate_limited(0), "ProviderRateLimitError"),
        (Fault.error(503), "ProviderOverloadedError"),
        (Fault.error(500), "ProviderServerError"),
        (Fault.stream_cut(after_chunks=0), "ProviderResponseError"),
    ],
)
def test_failing_gemini_falls_back_to_another_model(
    client: openai.OpenAI, pair: Pair, fault: Fault, error: str
) -> None:
    pair.upstream.script.push_fault(GEMINI_PATH, fault)
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-first", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().choices[0].message.content == "echo: hi"
    assert raw.headers["x-modelyard-model"] == GPT
    assert raw.headers["x-modelyard-failed-attempts"] == f"{GEMINI}:{error}"
    failed, served = records_for(pair, raw.headers["x-modelyard-decision"])
    assert (failed.model_id, failed.status, failed.error_class) == (GEMINI, "error", error)
    assert failed.cost_usd == 0
    openai_usage = pair.upstream.requests_to(OPENAI_PATH)[-1].usage
    assert openai_usage is not None
    assert (served.model_id, served.status) == (GPT, "ok")
    assert served.input_tokens == openai_usage["prompt_tokens"]


def test_blocked_prompt_is_a_400_content_filter_not_failed_over(
    client: openai.OpenAI, pair: Pair
) -> None:
    pair.upstream.script.push(GEMINI_PATH, body=blocked_prompt())
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gemini-first", messages=[{"role": "user", "content": "something bad"}]
        )
    assert caught.value.code == "content_filter"
    assert "blockReason SAFETY" in caught.value.message
    assert pair.upstream.script.pending() == 0


def test_safety_stop_mid_stream_ends_with_an_error_event_and_is_billed(
    client: openai.OpenAI, pair: Pair
) -> None:
    pair.upstream.script.push(GEMINI_PATH, chunks=safety_stop_stream(["Here is ", "how "]))
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-first",
        messages=[{"role": "user", "content": "something risky"}],
        stream=True,
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="stream interrupted after partial output"):
        for chunk in raw.parse():
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen) == "Here is how "
    [record] = records_for(pair, raw.headers["x-modelyard-decision"])
    assert (record.status, record.error_class) == ("error", "ContentFilteredError")
    assert record.streamed
    # Gemini's own count on the stopping event: 8 prompt, 12 answer tokens.
    assert (record.input_tokens, record.output_tokens) == (8, 12)
    p = PRICES[GEMINI]
    assert record.cost_usd == (8 * p["input"] + 12 * p["output"]) / Decimal(1_000_000)


def test_failing_gemini_stream_falls_back_before_any_content(
    client: openai.OpenAI, pair: Pair
) -> None:
    pair.upstream.script.push_fault(GEMINI_PATH, Fault.error(503))
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-first", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "echo: hi"
    assert raw.headers["x-modelyard-model"] == GPT
    failed, served = records_for(pair, raw.headers["x-modelyard-decision"])
    assert (failed.model_id, failed.error_class) == (GEMINI, "ProviderOverloadedError")
    assert (served.model_id, served.status, served.streamed) == (GPT, "ok", True)


def test_gemini_stream_cut_after_text_is_an_error_event_billed_as_streamed(
    client: openai.OpenAI, pair: Pair
) -> None:
    pair.upstream.script.push_fault(GEMINI_PATH, Fault.truncated(after_chunks=1))
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-first",
        messages=[{"role": "user", "content": "a long enough question"}],
        stream=True,
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="stream interrupted after partial output"):
        for chunk in raw.parse():
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert seen
    assert "echo: a long enough question".startswith("".join(seen))
    [record] = records_for(pair, raw.headers["x-modelyard-decision"])
    assert (record.status, record.error_class) == ("error", "ProviderResponseError")
    assert record.usage_source == "estimated"
    assert record.output_tokens > 0
