"""OpenTelemetry traces through the real app, captured with the SDK's in-memory
exporter: a span per request, a child span per attempt, GenAI attributes, the
decision id and reasons; a fallback is two attempt spans, the first an error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from modelyard.engine import Engine
from modelyard.errors import ProviderServerError
from modelyard.ledger import InMemoryLedger
from modelyard.observability.otel import traces_endpoint, tracing_from_env, upstreams
from modelyard.observability.tracing import OtelTelemetry
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import create_app
from modelyard.types import ChatRequest, Completion

ROOT = Path(__file__).resolve().parents[2]
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(
    engine: Engine, exporter: InMemorySpanExporter
) -> AsyncIterator[httpx.AsyncClient]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = OtelTelemetry(provider.get_tracer("test"), upstreams(engine.catalog))
    app = create_app(engine, telemetry=[otel])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def split(spans: tuple[ReadableSpan, ...]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    (request,) = [s for s in spans if s.parent is None]
    attempts = sorted((s for s in spans if s.parent is not None), key=lambda s: s.start_time or 0)
    return request, attempts


async def test_request_span_with_one_attempt_span_and_genai_attributes(
    traced: httpx.AsyncClient, exporter: InMemorySpanExporter, ledger: InMemoryLedger
) -> None:
    response = await traced.post("/v1/chat/completions", json={"model": "best", "messages": HELLO})
    assert response.status_code == 200
    request, attempts = split(exporter.get_finished_spans())
    (attempt,) = attempts
    (record,) = await ledger.records()
    assert attempt.parent is not None
    assert attempt.parent.span_id == request.context.span_id
    assert attempt.context.trace_id == request.context.trace_id
    assert attempt.kind == SpanKind.CLIENT
    a = attrs(attempt)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "anthropic"  # bigco's adapter
    assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == record.upstream_model
    assert a["gen_ai.usage.input_tokens"] == record.input_tokens == 100
    assert a["gen_ai.usage.output_tokens"] == record.output_tokens == 20
    assert a["modelyard.decision_id"] == record.decision_id
    assert a["modelyard.cost_usd"] == str(record.cost_usd)
    assert a["server.address"] == "big.example"
    assert attempt.end_time is not None
    assert attempt.start_time is not None
    assert attempt.end_time - attempt.start_time == pytest.approx(record.latency_ms * 1e6, abs=2)
    r = attrs(request)
    assert r["gen_ai.request.model"] == "best"
    assert r["gen_ai.response.model"] == "frontier"
    assert (
        r["modelyard.decision_id"] == record.decision_id == response.headers["x-modelyard-decision"]
    )
    assert r["modelyard.policy"] == "best"
    assert tuple(r["modelyard.candidates"])[:1] == ("frontier",)
    rejected = list(r["modelyard.rejected"])
    assert rejected == [f"{x['model']}: {x['reason']}"[:256] for x in record.reasons["rejected"]]
    assert r["http.response.status_code"] == 200
    assert request.status.status_code == StatusCode.UNSET


async def test_fallback_is_two_attempt_spans_the_first_an_error(
    traced: httpx.AsyncClient,
    exporter: InMemorySpanExporter,
    providers: dict[str, FunctionProvider],
) -> None:
    async def broken(request: ChatRequest, upstream: str) -> Completion:
        raise ProviderServerError("bigco: 503 overloaded", provider="bigco")

    providers["bigco"] = FunctionProvider(broken)
    response = await traced.post("/v1/chat/completions", json={"model": "best", "messages": HELLO})
    assert response.status_code == 200
    request, attempts = split(exporter.get_finished_spans())
    first, second = attempts
    assert first.status.status_code == StatusCode.ERROR
    assert attrs(first)["error.type"] == "ProviderServerError"
    assert attrs(first)["modelyard.model"] == "frontier"
    assert attrs(first)["modelyard.attempt"] == 1
    assert second.status.status_code == StatusCode.UNSET
    assert attrs(second)["modelyard.model"] == "vision-mid"
    assert attrs(second)["modelyard.attempt"] == 2
    assert all(
        s.parent is not None and s.parent.span_id == request.context.span_id for s in attempts
    )
    assert attrs(request)["gen_ai.response.model"] == "vision-mid"
    assert list(attrs(request)["modelyard.failed_attempts"]) == ["frontier: ProviderServerError"]


async def test_a_failed_request_span_has_error_status(
    traced: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    response = await traced.post("/v1/chat/completions", json={"model": "nope", "messages": HELLO})
    assert response.status_code == 404
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert attrs(span)["http.response.status_code"] == 404
    assert attrs(span)["error.type"] == "ModelNotFoundError"


async def test_stream_span_ends_after_the_last_chunk(
    traced: httpx.AsyncClient, exporter: InMemorySpanExporter, ledger: InMemoryLedger
) -> None:
    body = {"model": "cheap", "messages": HELLO, "stream": True}
    response = await traced.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    request, (attempt,) = split(exporter.get_finished_spans())
    (record,) = await ledger.records()
    assert record.ttft_ms is not None
    assert attrs(attempt)["modelyard.ttft_ms"] == round(record.ttft_ms, 3)
    assert attrs(request)["modelyard.stream"] is True
    assert attrs(request)["gen_ai.usage.output_tokens"] == 20
    assert request.end_time is not None
    assert attempt.end_time is not None
    assert request.end_time >= attempt.end_time


def test_endpoint_from_the_standard_variables() -> None:
    assert traces_endpoint({}) is None
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    both = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom",
    }
    assert traces_endpoint(both) == "http://t:4318/custom"
    assert traces_endpoint({**both, "OTEL_SDK_DISABLED": "true"}) is None
    assert traces_endpoint({**both, "OTEL_TRACES_EXPORTER": "none"}) is None


async def test_tracing_from_env_builds_an_otlp_exporter_only_when_configured(
    engine: Engine,
) -> None:
    assert tracing_from_env({}, engine.catalog) is None
    tracing = tracing_from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, engine.catalog
    )
    assert tracing is not None
    assert isinstance(tracing.telemetry, OtelTelemetry)
    await tracing.shutdown()


def test_an_endpoint_without_the_extra_warns_and_keeps_serving(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A missing package: the import fails as it would without `modelyard[otel]`.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with caplog.at_level(logging.WARNING, logger="modelyard.tracing"):
        got = tracing_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, engine.catalog)
    assert got is None
    assert "pip install 'modelyard[otel]'" in caplog.text


def run_python(code: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


SERVE_ONE = """
import asyncio, httpx
from modelyard.app_factory import Stack
from modelyard.catalog.defaults import default_config

async def main():
    app = Stack(default_config([]), "default", {}).create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            assert (await c.get("/metrics")).status_code == 200
            body = {"messages": [{"role": "user", "content": "x"}]}
            r = await c.post("/v1/chat/completions", json=body)
            assert r.status_code == 503, r.text  # no provider key set: a clear 503, no crash

asyncio.run(main())
"""


def bare_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MODELYARD_"))}
    env["MODELYARD_HOME"] = str(tmp_path)
    return env


def test_without_an_endpoint_the_sdk_and_tracing_are_never_imported(tmp_path: Path) -> None:
    check = (
        "import sys\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.exporter', 'modelyard.observability.tracing'))]\n"
        "assert not loaded, loaded\n"
    )
    run_python(SERVE_ONE + check, bare_env(tmp_path))


def test_without_the_otel_packages_the_gateway_serves_and_scrapes(tmp_path: Path) -> None:
    # The SDK and the exporter are what the extra adds (FastAPI itself imports the API).
    block = (
        "import sys, importlib.abc\n"
        "class NoOtel(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.startswith(('opentelemetry.sdk', 'opentelemetry.exporter')):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoOtel())\n"
    )
    env = bare_env(tmp_path)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"  # set, but no extra
    run_python(block + SERVE_ONE, env)
