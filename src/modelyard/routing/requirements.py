"""Inferring what a request needs, from its body and its routing hints.

- an image part → vision; an audio part → audio
- `tools` → tools; `response_format` json_schema → json_schema, json_object → json_mode
- `stream: true` → streaming
- the body's `modelyard` hints (or `x-modelyard-*` headers, merged by the server)
  add required capabilities, a per-request cost ceiling, a latency target, a data
  class and a task
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from modelyard.catalog.tokens import estimate_prompt_tokens
from modelyard.errors import InvalidRequestError
from modelyard.types import (
    AudioPart,
    Capability,
    ChatRequest,
    DataClass,
    ImagePart,
    Requirements,
    RoutingHints,
)

HEADER_PREFIX = "x-modelyard-"


def infer_capabilities(request: ChatRequest) -> frozenset[Capability]:
    """Capabilities the request's own body implies, plus any it asks for explicitly."""
    needed = {Capability.TEXT, *request.modelyard.capabilities}
    if any(m.has_part(ImagePart) for m in request.messages):
        needed.add(Capability.VISION)
    if any(m.has_part(AudioPart) for m in request.messages):
        needed.add(Capability.AUDIO)
    if request.tools:
        needed.add(Capability.TOOLS)
    if request.response_format is not None:
        if request.response_format.type == "json_schema":
            needed.add(Capability.JSON_SCHEMA)
        elif request.response_format.type == "json_object":
            needed.add(Capability.JSON_MODE)
    if request.stream:
        needed.add(Capability.STREAMING)
    return frozenset(needed)


def infer_requirements(request: ChatRequest, family: str = "openai") -> Requirements:
    """The request's requirements; prompt tokens counted for a model `family`."""
    hints = request.modelyard
    return Requirements(
        capabilities=infer_capabilities(request),
        prompt_tokens=estimate_prompt_tokens(request, family),
        max_output_tokens=request.output_limit,
        data_class=hints.data_class or DataClass.INTERNAL,
        max_cost_usd=hints.max_cost_usd,
        max_latency_ms=hints.max_latency_ms,
        task=hints.task,
    )


def hints_from_headers(headers: Mapping[str, str], body_hints: RoutingHints) -> RoutingHints:
    """Merge `x-modelyard-*` headers into the body's hints; the body wins on conflict."""
    values: dict[str, object] = {}
    get = {k.lower(): v for k, v in headers.items()}.get
    if caps := get(HEADER_PREFIX + "capabilities"):
        values["capabilities"] = [c.strip() for c in caps.split(",") if c.strip()]
    if cost := get(HEADER_PREFIX + "max-cost-usd"):
        try:
            values["max_cost_usd"] = Decimal(cost)
        except InvalidOperation:
            raise InvalidRequestError(
                f"header {HEADER_PREFIX}max-cost-usd must be a number, got {cost!r}",
                param=HEADER_PREFIX + "max-cost-usd",
            ) from None
    for header, key in (
        ("max-latency-ms", "max_latency_ms"),
        ("data-class", "data_class"),
        ("task", "task"),
        ("policy", "policy"),
    ):
        if (value := get(HEADER_PREFIX + header)) is not None:
            values[key] = value
    if (directive := cache_directive(get("cache-control"))) is not None:
        values["cache"] = directive
    merged = {**values, **body_hints.model_dump(exclude_unset=True)}
    return RoutingHints.model_validate(merged)


def cache_directive(header: str | None) -> str | None:
    """The response-cache opt-out a `Cache-Control` request header asks for:
    `no-store` (neither served from nor stored in the cache) wins over `no-cache`
    (not served from it; the fresh answer replaces the entry), as in HTTP."""
    if not header:
        return None
    directives = {part.split("=", 1)[0].strip().lower() for part in header.split(",")}
    if "no-store" in directives:
        return "no-store"
    if "no-cache" in directives:
        return "no-cache"
    return None
