"""OpenTelemetry traces: one span per caller request, one child span per provider
attempt, with the GenAI semantic-convention attributes plus modelyard's decision
id and compact reasons. Needs the `otel` extra; only `otel.tracing_from_env`
imports this module, and only when an OTLP endpoint is configured.

Attempt spans are made from the billed ledger record itself (its start time and
latency give the span's bounds), so a trace shows exactly what was billed:
a fallback is two attempt spans under one request span, the first with status
ERROR and its `error.type`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from modelyard.observability.hooks import RequestEnd

if TYPE_CHECKING:
    from modelyard.ledger.records import CallRecord
    from modelyard.routing.plan import Decision
    from modelyard.types import ChatRequest

OPERATION: Final = "chat"
# Caps that keep a span small whatever the catalog's size.
MAX_LISTED: Final = 20
MAX_TEXT: Final = 256
# Requests whose end never came (a bug) must not pile up.
MAX_OPEN: Final = 10_000


@dataclass(frozen=True, slots=True)
class Upstream:
    """What a trace says about a deployment: the GenAI provider name and its host."""

    provider: str
    host: str | None = None
    port: int | None = None


class OtelTelemetry:
    """A `Telemetry` that writes spans through `tracer`. `upstreams`: per deployment
    name, its provider name and address (see `otel.upstreams`)."""

    def __init__(self, tracer: Tracer, upstreams: Mapping[str, Upstream]) -> None:
        self.tracer = tracer
        self.upstreams = upstreams
        self._open: dict[str, list[Span]] = {}

    def request_started(self, request_id: str, request: ChatRequest) -> None:
        if len(self._open) >= MAX_OPEN:
            self._open.clear()
        # Started in the caller's context: under an ASGI server span if there is one.
        span = self.tracer.start_span(
            f"{OPERATION} {request.model[:64]}",
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": OPERATION,
                "gen_ai.request.model": request.model[:MAX_TEXT],
                "modelyard.stream": bool(request.stream),
            },
        )
        self._open.setdefault(request_id, []).append(span)

    def attempt_billed(self, record: CallRecord) -> None:
        parents = self._open.get(record.request_id)
        context = trace.set_span_in_context(parents[-1]) if parents else None
        start = int(record.started_at.timestamp() * 1e9)
        upstream = self.upstreams.get(record.deployment, Upstream("unknown"))
        span = self.tracer.start_span(
            f"{OPERATION} {record.upstream_model}",
            context=context,
            kind=SpanKind.CLIENT,
            start_time=start,
            attributes=_attempt_attributes(record, upstream),
        )
        if record.status == "error":
            span.set_status(Status(StatusCode.ERROR, (record.error_message or "")[:MAX_TEXT]))
        span.end(end_time=start + int(record.latency_ms * 1e6))

    def hedge_started(self, decision: Decision, model_id: str) -> None:
        """Seen in the trace as two overlapping attempt spans."""

    def request_ended(self, request_id: str, end: RequestEnd) -> None:
        spans = self._open.get(request_id)
        if not spans:
            return
        span = spans.pop(0)
        if not spans:
            del self._open[request_id]
        span.set_attributes(_request_attributes(end))
        if end.status >= 400:
            span.set_status(Status(StatusCode.ERROR, _error_text(end)))
        span.end()


def _attempt_attributes(record: CallRecord, upstream: Upstream) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": upstream.provider,
        # The pre-1.37 name of the same attribute, still read by many backends.
        "gen_ai.system": upstream.provider,
        "gen_ai.request.model": record.upstream_model,
        "gen_ai.usage.input_tokens": record.input_tokens,
        "gen_ai.usage.output_tokens": record.output_tokens,
        "modelyard.decision_id": record.decision_id,
        "modelyard.model": record.model_id,
        "modelyard.deployment": record.deployment,
        "modelyard.attempt": record.attempt,
        "modelyard.status": record.status,
        "modelyard.cost_usd": str(record.cost_usd),
        "modelyard.usage_source": record.usage_source,
    }
    if record.status in ("ok", "escalated"):
        attrs["gen_ai.response.model"] = record.upstream_model
    if upstream.host is not None:
        attrs["server.address"] = upstream.host
    if upstream.port is not None:
        attrs["server.port"] = upstream.port
    if record.error_class is not None:
        attrs["error.type"] = record.error_class
    if record.ttft_ms is not None:
        attrs["modelyard.ttft_ms"] = round(record.ttft_ms, 3)
    if record.step is not None:
        attrs["modelyard.step"] = record.step
    if record.role is not None:
        attrs["modelyard.role"] = record.role
    return attrs


def _request_attributes(end: RequestEnd) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {"http.response.status_code": end.status}
    decision = end.decision
    if decision is not None:
        attrs.update(compact_reasons(decision))
    if end.model_id is not None:
        attrs["gen_ai.response.model"] = end.model_id
    if end.usage is not None:
        attrs["gen_ai.usage.input_tokens"] = end.usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = end.usage.output_tokens
    if end.cost_usd is not None:
        attrs["modelyard.cost_usd"] = str(end.cost_usd)
    if end.failed:
        attrs["modelyard.failed_attempts"] = [
            f"{f.model_id}: {type(f.error).__name__}" for f in end.failed
        ][:MAX_LISTED]
    if end.error is not None:
        attrs["error.type"] = type(end.error).__name__
    return attrs


def compact_reasons(decision: Decision) -> dict[str, AttributeValue]:
    """The decision's reasons in a few short attributes: the ranked candidates, each
    rejection with its reason, the notes (capped at `MAX_LISTED` items)."""
    attrs: dict[str, AttributeValue] = {
        "modelyard.decision_id": decision.id,
        "modelyard.policy": decision.policy,
        "modelyard.plan": decision.kind,
        "modelyard.candidates": [c.card.id for c in decision.candidates][:MAX_LISTED],
        "modelyard.rejected": [
            f"{r.model_id}: {r.reason}"[:MAX_TEXT] for r in decision.rejected[:MAX_LISTED]
        ],
    }
    if decision.candidates:
        attrs["modelyard.reason"] = decision.candidates[0].reason[:MAX_TEXT]
    if decision.notes:
        attrs["modelyard.notes"] = [n[:MAX_TEXT] for n in decision.notes[:MAX_LISTED]]
    if decision.budget_note is not None:
        attrs["modelyard.budget_note"] = decision.budget_note[:MAX_TEXT]
    return attrs


def _error_text(end: RequestEnd) -> str:
    message = getattr(end.error, "message", None) or type(end.error).__name__
    return str(message)[:MAX_TEXT]
