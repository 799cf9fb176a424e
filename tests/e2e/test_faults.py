"""Failover through real sockets: the real gateway in front of three fake upstreams
that fail on cue (`modelyard.testing.faults`).

Three deployments, each its own fake server: `dep-a` and `dep-b` speak OpenAI,
`dep-c` speaks Anthropic. Prices and qualities fix the fallback orders:
`cheapest` (the default policy) tries alpha, beta, gamma; `best` tries gamma, beta,
alpha. Every test gets a fresh gateway (fresh breakers and an empty ledger), so the
ledger must hold exactly one record per request the fakes received.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml

from modelyard.app_factory import load_stack
from modelyard.ledger import CallRecord, open_ledger
from modelyard.testing.faults import Fault, FaultKind, FaultProfile
from modelyard.testing.upstream import (
    ANTHROPIC_PATH,
    OPENAI_PATH,
    FakeUpstream,
    create_fake_upstream,
)
from modelyard.testing.wire import request_problem
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.slow

ALPHA, BETA, GAMMA = "acme/alpha", "acme/beta", "acme/gamma"
KEYS = {"FAULT_KEY_A": "sk-fault-a-0123456789", "FAULT_KEY_B": "sk-fault-b-0123456789"}
KEYS["FAULT_KEY_C"] = "sk-ant-fault-c-0123456789"
# model → (deployment, adapter, key env, input $/Mtok, output $/Mtok, quality)
MODELS = {
    ALPHA: ("dep-a", "openai", "FAULT_KEY_A", "0.10", "0.40", 0.6),
    BETA: ("dep-b", "openai", "FAULT_KEY_B", "1.00", "4.00", 0.8),
    GAMMA: ("dep-c", "anthropic", "FAULT_KEY_C", "3.00", "15.00", 0.9),
}
PATHS = {ALPHA: OPENAI_PATH, BETA: OPENAI_PATH, GAMMA: ANTHROPIC_PATH}
RESILIENCE = {
    "max_attempts": 3,
    "request_timeout_s": 10,
    "attempt_timeout_s": 1,
    "first_token_timeout_s": 0.5,
    "retry_wait_max_s": 0.5,
    "breaker": {"failure_threshold": 2, "cooldown_s": 1, "half_open_probes": 1},
}
SLOW_S = 2.5  # beyond every timeout above


@dataclass
class Rig:
    """The running fakes (by model id) and this test's gateway."""

    fakes: dict[str, FakeUpstream]
    gateway_url: str
    ledger_path: Path

    def received(self, model: str) -> int:
        """Requests the fake serving `model` has received in this test."""
        return len(self.fakes[model].requests)

    def fail(self, model: str, fault: Fault, times: int = 1) -> None:
        """Queue `fault` for the next `times` requests to `model`'s fake."""
        self.fakes[model].script.push_fault(PATHS[model], fault, times)

    async def records(self) -> list[CallRecord]:
        """Every ledger record, in attempt order."""
        ledger = open_ledger(f"sqlite:///{self.ledger_path}")
        await ledger.open()
        try:
            found = await ledger.records(limit=10_000)
        finally:
            await ledger.close()
        return sorted(found, key=lambda r: (r.started_at, r.attempt))

    async def settled_records(self) -> list[CallRecord]:
        """The records once there is one per upstream request received (or after 5 s)."""
        deadline = time.monotonic() + 5
        while True:
            records = await self.records()
            if len(records) >= sum(len(f.requests) for f in self.fakes.values()):
                return records
            if time.monotonic() > deadline:
                return records
            await asyncio.sleep(0.05)


def stack_config(urls: dict[str, str]) -> dict[str, Any]:
    """Three deployments on three fakes, explicit prices, cheapest and best policies."""
    deployments: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for model, (dep, adapter, env, price_in, price_out, quality) in MODELS.items():
        base = f"{urls[model]}/v1" if adapter == "openai" else urls[model]
        deployments[dep] = {"adapter": adapter, "base_url": base, "api_key_env": env}
        deployments[dep]["timeout_s"] = 30  # the resilience timeouts must be what fires
        models[model] = {
            "deployment": dep,
            "upstream": model.split("/")[1],
            "family": adapter,
            "capabilities": ["text", "streaming"],
            "context_window": 100_000,
            "max_output_tokens": 4_000,
            "prices": {"input": price_in, "output": price_out},
            "quality": {"default": quality},
        }
    return {
        "deployments": deployments,
        "models": models,
        "policies": {
            "cheapest": {"type": "cheapest"},
            "best": {"type": "best"},
            "hedged": {"type": "best", "hedge_after_ms": 100},
        },
        "default_policy": "cheapest",
        "resilience": RESILIENCE,
    }


@dataclass
class Fake:
    """One fake upstream server and its state."""

    server: LiveServer
    state: FakeUpstream

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Fake]]:
    """One fake upstream server per model, for the module."""
    request_problem("openai", {})  # build the validators before any timed request
    request_problem("anthropic", {})
    running: dict[str, Fake] = {}
    try:
        for model, (dep, _adapter, env, *_rest) in MODELS.items():
            state = FakeUpstream(openai_key=KEYS[env], anthropic_key=KEYS[env])
            running[model] = Fake(LiveServer(create_fake_upstream(state), f"fake-{dep}"), state)
            running[model].server.start()
        yield running
    finally:
        for fake in running.values():
            fake.server.stop()


@pytest.fixture
def rig(fakes: dict[str, Fake], tmp_path: Path) -> Iterator[Rig]:
    """A fresh gateway over the module's fakes, whose scripts and records are reset."""
    for fake in fakes.values():
        fake.state.reset()
    config_path = tmp_path / "stack.yaml"
    urls = {model: fake.url for model, fake in fakes.items()}
    config_path.write_text(yaml.safe_dump(stack_config(urls)), encoding="utf-8")
    stack = load_stack(str(config_path), (), KEYS)
    ledger_path = tmp_path / "ledger.db"
    gateway = LiveServer(stack.create_app(open_ledger(f"sqlite:///{ledger_path}")), "gateway")
    gateway.start()
    try:
        yield Rig({m: f.state for m, f in fakes.items()}, gateway.url, ledger_path)
    finally:
        gateway.stop()


@pytest.fixture
async def http(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the gateway (no SDK retries to blur the counts)."""
    async with httpx.AsyncClient(base_url=rig.gateway_url, timeout=20) as client:
        yield client


def chat(text: str = "hello there", *, model: str = "cheapest", stream: bool = False) -> Any:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}


@dataclass
class Answer:
    """A gateway answer, streamed or not, reduced to what the tests check."""

    status: int
    headers: httpx.Headers
    text: str
    body: Any = None
    error: Any = None
    done: bool = False


async def ask(http: httpx.AsyncClient, body: Any) -> Answer:
    """POST a chat request; a stream is read to its end and its content joined."""
    if not body.get("stream"):
        response = await http.post("/v1/chat/completions", json=body)
        data = response.json()
        text = data["choices"][0]["message"]["content"] if response.is_success else ""
        return Answer(response.status_code, response.headers, text, data, data.get("error"))
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if not response.is_success:
            data = json.loads(await response.aread())
            return Answer(response.status_code, response.headers, "", data, data.get("error"))
        answer = Answer(response.status_code, response.headers, "")
        async for line in response.aiter_lines():
            payload = line.removeprefix("data: ") if line.startswith("data: ") else None
            if payload == "[DONE]":
                answer.done = True
            elif payload is not None:
                event = json.loads(payload)
                answer.error = event.get("error", answer.error)
                for choice in event.get("choices", []):
                    answer.text += choice["delta"].get("content") or ""
        return answer


async def route(http: httpx.AsyncClient, policy: str = "cheapest") -> dict[str, Any]:
    """The gateway's dry-run decision for a plain request."""
    answer = (await http.post("/v1/route", json=chat(model=policy))).json()
    assert answer["outcome"] == "routed", answer
    decision: dict[str, Any] = answer["decision"]
    return decision


def rejection(decision: dict[str, Any], model: str) -> str | None:
    return next((r["reason"] for r in decision["rejected"] if r["model"] == model), None)


def attempts(records: list[CallRecord]) -> list[tuple[str, str, str | None]]:
    return [(r.model_id, r.status, r.error_class) for r in records]


async def assert_one_record_per_upstream_call(rig: Rig) -> list[CallRecord]:
    records = await rig.settled_records()
    received = {m: rig.received(m) for m in MODELS}
    billed = {m: sum(r.model_id == m for r in records) for m in MODELS}
    assert billed == received
    assert len({r.id for r in records}) == len(records)
    return records


# --- every fault kind fails over to the next model --------------------------------------

TIMEOUT, CONN, BAD_BODY = "ProviderTimeoutError", "ProviderConnectionError", "ProviderResponseError"
OPENAI_FAULTS = [
    ("500", Fault.error(500), "ProviderServerError"),
    ("503", Fault.error(503), "ProviderServerError"),
    ("529", Fault.overloaded(), "ProviderOverloadedError"),
    ("429-retry-after", Fault.rate_limited(5), "ProviderRateLimitError"),
    ("429-retry-after-ms", Fault.rate_limited(5, in_ms=True), "ProviderRateLimitError"),
    ("latency", Fault.latency(SLOW_S), TIMEOUT),
    ("slow-first-token", Fault.slow_first_token(SLOW_S), TIMEOUT),
    ("truncated", Fault.truncated(), BAD_BODY),
    ("stream-cut-before-content", Fault.stream_cut(after_chunks=1), BAD_BODY),
    ("connection-reset", Fault.reset(), CONN),
]
ANTHROPIC_FAULTS = [
    ("529", Fault.overloaded(), "ProviderOverloadedError"),
    ("500", Fault.error(500), "ProviderServerError"),
    ("429-retry-after", Fault.rate_limited(5), "ProviderRateLimitError"),
    ("slow-first-token", Fault.slow_first_token(SLOW_S), TIMEOUT),
    ("truncated", Fault.truncated(after_chunks=2), BAD_BODY),
    ("stream-cut-before-content", Fault.stream_cut(after_chunks=3), BAD_BODY),
    ("connection-reset", Fault.reset(), CONN),
]
CASES = [
    pytest.param("cheapest", ALPHA, fault, error, id=f"openai-{name}")
    for name, fault, error in OPENAI_FAULTS
] + [
    pytest.param("best", GAMMA, fault, error, id=f"anthropic-{name}")
    for name, fault, error in ANTHROPIC_FAULTS
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("policy", "first", "fault", "error"), CASES)
async def test_fault_fails_over_to_the_next_model(
    rig: Rig,
    http: httpx.AsyncClient,
    policy: str,
    first: str,
    fault: Fault,
    error: str,
    stream: bool,
) -> None:
    rig.fail(first, fault)
    answer = await ask(http, chat("hello there", model=policy, stream=stream))
    assert answer.status == 200, answer.body
    assert answer.text == "echo: hello there"
    assert answer.done or not stream
    assert answer.headers["x-modelyard-model"] == BETA
    assert answer.headers["x-modelyard-failed-attempts"] == f"{first}:{error}"
    assert rig.fakes[first].requests[0].fault == fault.label
    records = await assert_one_record_per_upstream_call(rig)
    assert attempts(records) == [(first, "error", error), (BETA, "ok", None)]
    assert [r.attempt for r in records] == [1, 2]
    assert {r.decision_id for r in records} == {answer.headers["x-modelyard-decision"]}
    assert records[0].cost_usd == 0
    assert records[1].cost_usd > 0


# --- the caller's own 4xx ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("policy", "first"), [("cheapest", ALPHA), ("best", GAMMA)])
async def test_callers_own_4xx_is_returned_unchanged_without_fallback(
    rig: Rig, http: httpx.AsyncClient, policy: str, first: str, stream: bool
) -> None:
    message = "temperature: 7 is greater than the maximum of 2"
    rig.fail(first, Fault.error(400, message=message))
    answer = await ask(http, chat(model=policy, stream=stream))
    assert answer.status == 400
    assert answer.error["message"] == message
    assert answer.error["type"] == "invalid_request_error"
    assert "x-modelyard-failed-attempts" not in answer.headers
    assert {m: rig.received(m) for m in MODELS} == {m: int(m == first) for m in MODELS}
    records = await assert_one_record_per_upstream_call(rig)
    assert attempts(records) == [(first, "error", "UpstreamRequestError")]


# --- nothing left -----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_every_model_down_is_a_503_listing_what_was_tried(
    rig: Rig, http: httpx.AsyncClient, stream: bool
) -> None:
    rig.fail(ALPHA, Fault.error(500))
    rig.fail(BETA, Fault.reset())
    rig.fail(GAMMA, Fault.overloaded())
    answer = await ask(http, chat(stream=stream))
    assert answer.status == 503
    assert answer.error["code"] == "all_attempts_failed"
    tried = answer.error["message"]
    assert all(model in tried for model in MODELS)
    assert tried.index(ALPHA) < tried.index(BETA) < tried.index(GAMMA)
    records = await assert_one_record_per_upstream_call(rig)
    assert attempts(records) == [
        (ALPHA, "error", "ProviderServerError"),
        (BETA, "error", "ProviderConnectionError"),
        (GAMMA, "error", "ProviderOverloadedError"),
    ]


async def test_last_healthy_model_failing_is_a_503_naming_the_skipped_ones(
    rig: Rig, http: httpx.AsyncClient
) -> None:
    for _ in range(2):  # threshold 2: opens dep-a's and dep-b's breakers
        rig.fail(ALPHA, Fault.error(500))
        rig.fail(BETA, Fault.error(500))
        assert (await ask(http, chat())).headers["x-modelyard-model"] == GAMMA
    rig.fail(GAMMA, Fault.error(500))
    answer = await ask(http, chat())
    await assert_one_record_per_upstream_call(rig)
    assert answer.status == 503
    assert answer.error["code"] == "all_attempts_failed"
    assert all(model in answer.error["message"] for model in MODELS)


# --- 429 cool-down and short Retry-After ------------------------------------------------


async def test_429_with_retry_after_cools_the_deployment_down(
    rig: Rig, http: httpx.AsyncClient
) -> None:
    rig.fail(ALPHA, Fault.rate_limited(1))
    first = await ask(http, chat())
    assert first.headers["x-modelyard-failed-attempts"] == f"{ALPHA}:ProviderRateLimitError"
    reason = rejection(await route(http), ALPHA)
    assert reason is not None
    assert "cooling down after 429" in reason
    skipped = await ask(http, chat())
    assert (skipped.status, skipped.headers["x-modelyard-model"]) == (200, BETA)
    assert "x-modelyard-failed-attempts" not in skipped.headers
    assert rig.received(ALPHA) == 1  # not called while cooling down
    await asyncio.sleep(1.2)
    assert rejection(await route(http), ALPHA) is None
    back = await ask(http, chat())
    assert back.headers["x-modelyard-model"] == ALPHA
    await assert_one_record_per_upstream_call(rig)


async def test_short_retry_after_is_waited_out_on_the_last_candidate(
    rig: Rig, http: httpx.AsyncClient
) -> None:
    rig.fail(ALPHA, Fault.rate_limited(0.3, in_ms=True))
    started = time.monotonic()
    answer = await ask(http, chat(model=ALPHA))
    assert time.monotonic() - started >= 0.3
    assert (answer.status, answer.headers["x-modelyard-model"]) == (200, ALPHA)
    assert rig.received(ALPHA) == 2
    records = await assert_one_record_per_upstream_call(rig)
    assert attempts(records) == [(ALPHA, "error", "ProviderRateLimitError"), (ALPHA, "ok", None)]


async def test_long_retry_after_on_the_last_candidate_is_returned_as_429(
    rig: Rig, http: httpx.AsyncClient
) -> None:
    rig.fail(ALPHA, Fault.rate_limited(30))
    answer = await ask(http, chat(model=ALPHA))
    assert answer.status == 429
    assert answer.error["type"] == "rate_limit_error"
    assert rig.received(ALPHA) == 1
    records = await assert_one_record_per_upstream_call(rig)
    assert attempts(records) == [(ALPHA, "error", "ProviderRateLimitError")]


# --- circuit breaker --------------------------------------------------------------------


async def open_alphas_breaker(rig: Rig, http: httpx.AsyncClient) -> None:
    """Two failing requests (threshold 2) open dep-a's breaker."""
    rig.fail(ALPHA, Fault.error(500), times=2)
    for _ in range(2):
        answer = await ask(http, chat())
        assert answer.headers["x-modelyard-failed-attempts"] == f"{ALPHA}:ProviderServerError"
    reason = rejection(await route(http), ALPHA)
    assert reason is not None
    assert "circuit open" in reason


async def test_repeated_failures_open_the_breaker_and_a_probe_closes_it(
    rig: Rig, http: httpx.AsyncClient
) -> None:
    await open_alphas_breaker(rig, http)
    while_open = await ask(http, chat())
    assert while_open.headers["x-modelyard-model"] == BETA
    assert "x-modelyard-failed-attempts" not in while_open.headers
    assert rig.received(ALPHA) == 2
    await asyncio.sleep(1.2)  # cooldown_s: 1 → half-open
    decision = await route(http)
    assert decision["candidates"][0]["model"] == ALPHA
    probe = await ask(http, chat())
    assert (probe.status, probe.headers["x-modelyard-model"]) == (200, ALPHA)
    assert rejection(await route(http), ALPHA) is None
    closed = await ask(http, chat())
    assert closed.headers["x-modelyard-model"] == ALPHA
    records = await assert_one_record_per_upstream_call(rig)
    assert [r.status for r in records if r.model_id == ALPHA] == ["error", "error", "ok", "ok"]


async def test_a_failed_half_open_probe_opens_the_breaker_again(
    rig: Rig, http: httpx.AsyncClient
) -> None:
    await open_alphas_breaker(rig, http)
    await asyncio.sleep(1.2)
    rig.fail(ALPHA, Fault.reset())
    probe = await ask(http, chat())
    assert probe.headers["x-modelyard-failed-attempts"] == f"{ALPHA}:ProviderConnectionError"
    assert probe.headers["x-modelyard-model"] == BETA
    reason = rejection(await route(http), ALPHA)
    assert reason is not None
    assert "circuit open" in reason
    await assert_one_record_per_upstream_call(rig)


# --- streams cut after content ----------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "first", "fault"),
    [
        pytest.param("cheapest", ALPHA, Fault.stream_cut(after_chunks=3), id="openai-cut"),
        pytest.param("cheapest", ALPHA, Fault.truncated(after_chunks=3), id="openai-ragged"),
        pytest.param("best", GAMMA, Fault.stream_cut(after_chunks=5), id="anthropic-cut"),
    ],
)
async def test_stream_cut_after_content_ends_with_an_error_event_and_is_billed(
    rig: Rig, http: httpx.AsyncClient, policy: str, first: str, fault: Fault
) -> None:
    rig.fail(first, fault)
    answer = await ask(http, chat("a long enough question", model=policy, stream=True))
    assert (answer.status, answer.headers["x-modelyard-model"]) == (200, first)
    assert answer.text
    assert "echo: a long enough question".startswith(answer.text)
    assert answer.text != "echo: a long enough question"
    assert not answer.done
    assert answer.error["message"].startswith("stream interrupted after partial output")
    assert {m: rig.received(m) for m in MODELS} == {m: int(m == first) for m in MODELS}
    records = await assert_one_record_per_upstream_call(rig)
    assert attempts(records) == [(first, "error", "ProviderResponseError")]
    assert records[0].streamed
    assert records[0].output_tokens > 0
    assert records[0].cost_usd > 0


# --- the caller hangs up ----------------------------------------------------------------


async def test_client_cancelling_mid_request_bills_the_attempt_as_cancelled(
    rig: Rig, http: httpx.AsyncClient
) -> None:
    rig.fail(ALPHA, Fault.latency(0.8))  # slow, but within attempt_timeout_s
    with pytest.raises(httpx.ReadTimeout):
        await http.post("/v1/chat/completions", json=chat(), timeout=0.3)
    await asyncio.sleep(1.0)  # long enough for a call that was not cancelled to finish
    records = await assert_one_record_per_upstream_call(rig)
    assert attempts(records) == [(ALPHA, "cancelled", None)]
    assert records[0].latency_ms < 800
    assert rig.received(BETA) == rig.received(GAMMA) == 0


# --- the fake's faults as the official SDKs see them ------------------------------------


@pytest.mark.parametrize(
    ("stream", "fault"),
    [(False, Fault.latency(0.8)), (True, Fault.slow_first_token(0.4))],
    ids=["json-slow-answer", "stream-slow-first-token"],
)
async def test_hedging_races_the_runner_up_and_bills_the_cancelled_loser(
    rig: Rig, http: httpx.AsyncClient, stream: bool, fault: Fault
) -> None:
    # Slow, but inside every timeout: only the hedge (100 ms) makes the gateway move on.
    rig.fail(GAMMA, fault)
    answer = await ask(http, chat("hedge me", model="hedged", stream=stream))
    assert (answer.status, answer.text) == (200, "echo: hedge me")
    assert answer.headers["x-modelyard-model"] == BETA
    records = await assert_one_record_per_upstream_call(rig)
    statuses = {r.model_id: r.status for r in records}
    assert statuses == {GAMMA: "cancelled", BETA: "ok"}
    loser = next(r for r in records if r.model_id == GAMMA)
    assert loser.input_tokens > 0, "the loser is billed for the prompt it was sent"
    assert loser.cost_usd > 0


def test_sdks_read_the_fakes_errors_as_they_read_the_real_apis(fakes: dict[str, Fake]) -> None:
    alpha, gamma = fakes[ALPHA].state, fakes[GAMMA].state
    alpha.reset()
    gamma.reset()
    oai = openai.OpenAI(base_url=f"{fakes[ALPHA].url}/v1", api_key=KEYS["FAULT_KEY_A"])
    claude = anthropic.Anthropic(base_url=fakes[GAMMA].url, api_key=KEYS["FAULT_KEY_C"])
    messages: Any = [{"role": "user", "content": "hi"}]
    alpha.script.push_fault(OPENAI_PATH, Fault.rate_limited(0.25, in_ms=True))
    with pytest.raises(openai.RateLimitError) as limited:
        oai.with_options(max_retries=0).chat.completions.create(model="m", messages=messages)
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["retry-after-ms"] == "250"
    gamma.script.push_fault(ANTHROPIC_PATH, Fault.overloaded())
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.with_options(max_retries=0).messages.create(
            model="m", max_tokens=5, messages=messages
        )
    assert overloaded.value.status_code == 529
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_fake0001",
    }
    alpha.script.push_fault(OPENAI_PATH, Fault.reset())
    with pytest.raises(openai.APIConnectionError):
        oai.with_options(max_retries=0).chat.completions.create(model="m", messages=messages)
    # The SDK retries a 529 on its own (after a short back-off) and then gets the answer.
    gamma.script.push_fault(ANTHROPIC_PATH, Fault.overloaded())
    reply = claude.with_options(max_retries=1).messages.create(
        model="m", max_tokens=5, messages=messages
    )
    assert reply.content[0].type == "text"
    assert [r.fault for r in gamma.requests] == ["http_error:529", "http_error:529", None]


def test_fault_profile_draws_the_same_faults_for_the_same_seed() -> None:
    kinds: list[Fault | FaultKind] = [
        Fault.error(503),
        FaultKind.CONNECTION_RESET,
        Fault.truncated(),
    ]

    def draws(seed: int) -> list[str | None]:
        profile = FaultProfile(0.3, kinds, seed=seed)
        return [(f.label if (f := profile.draw(OPENAI_PATH)) else None) for _ in range(2000)]

    first, again, other = draws(7), draws(7), draws(8)
    assert first == again
    assert first != other
    failed = [label for label in first if label is not None]
    assert 0.25 < len(failed) / len(first) < 0.35
    assert set(failed) == {"http_error:503", "connection_reset", "truncated_body"}
    only_anthropic = FaultProfile(1.0, kinds, seed=7, paths=frozenset({ANTHROPIC_PATH}))
    assert only_anthropic.draw(OPENAI_PATH) is None
    assert only_anthropic.draw(ANTHROPIC_PATH) is not None
    with pytest.raises(ValueError, match="failure_rate"):
        FaultProfile(1.5, kinds)
