"""Turning traces on: `tracing_from_env` builds an OTLP/HTTP exporter when the
standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
set, and does nothing otherwise. OpenTelemetry is imported only then: without the
`otel` extra, or without an endpoint, traces cost nothing, not even the import.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from modelyard.catalog.catalog import Catalog

if TYPE_CHECKING:
    from modelyard.observability.hooks import Telemetry
    from modelyard.observability.tracing import Upstream

log = logging.getLogger("modelyard.tracing")
ENDPOINT_ENV: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
# Provider names of the GenAI semantic conventions, by API host; any other host is
# named by its adapter (an OpenAI-compatible local server is "openai"-shaped, not
# OpenAI, so it gets the adapter name only when nothing better is known).
KNOWN_HOSTS: Final = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
}


@dataclass(frozen=True, slots=True)
class Tracing:
    """An observer writing spans, and how to flush them at shutdown."""

    telemetry: Telemetry
    shutdown: Callable[[], Awaitable[None]]


def traces_endpoint(env: Mapping[str, str]) -> str | None:
    """The OTLP/HTTP traces URL the environment names, or None (traces off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    if url := env.get(TRACES_ENDPOINT_ENV, "").strip():
        return url
    if base := env.get(ENDPOINT_ENV, "").strip():
        # As the OpenTelemetry spec says for the generic variable: append the path.
        return base.rstrip("/") + "/v1/traces"
    return None


def upstreams(catalog: Catalog) -> dict[str, Upstream]:
    """Each deployment's GenAI provider name and address, for attempt spans."""
    from modelyard.observability.tracing import Upstream

    out: dict[str, Upstream] = {}
    for card in catalog.cards.values():
        dep = card.deployment
        url = urlsplit(dep.base_url)
        provider = KNOWN_HOSTS.get(url.hostname or "", dep.adapter)
        out[dep.name] = Upstream(provider, url.hostname, url.port)
    return out


def tracing_from_env(env: Mapping[str, str], catalog: Catalog) -> Tracing | None:
    """OTLP/HTTP tracing when an endpoint is configured and the `otel` extra is
    installed; None otherwise (logged when an endpoint is set but the extra is not)."""
    endpoint = traces_endpoint(env)
    if endpoint is None:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from modelyard.observability.tracing import OtelTelemetry
    except ImportError:
        log.warning(
            "%s is set but OpenTelemetry is not installed (pip install 'modelyard[otel]'): "
            "traces are off",
            TRACES_ENDPOINT_ENV if env.get(TRACES_ENDPOINT_ENV) else ENDPOINT_ENV,
        )
        return None
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES still apply (read by the SDK).
    service = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "modelyard"}
    provider = TracerProvider(resource=Resource.create(service))
    # Auth headers come from OTEL_EXPORTER_OTLP_HEADERS, read by the exporter.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    telemetry = OtelTelemetry(provider.get_tracer("modelyard"), upstreams(catalog))
    log.info("traces: OTLP/HTTP to %s", urlsplit(endpoint)._replace(query="").geturl())

    async def shutdown() -> None:
        import anyio

        # Flushes what is batched; blocking, so off the event loop.
        await anyio.to_thread.run_sync(provider.shutdown)

    return Tracing(telemetry, shutdown)
