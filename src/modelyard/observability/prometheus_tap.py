"""Counters and histograms fed by the engine's hooks: one ledger record per provider
attempt (the same record that was billed, so counts and cost agree with the
ledger), one end per caller request, one event per hedge.

Label children are looked up once per distinct label set and cached, so the hot
path is a dict lookup and a few increments. No label carries prompt text, request
ids or decision ids; keys and teams go through `BoundedLabel`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import LowConfidenceError
from modelyard.observability.hooks import RequestEnd
from modelyard.observability.labels import DEFAULT_LABEL_LIMIT, NONE, BoundedLabel
from modelyard.observability.metrics import Metrics, metrics

if TYPE_CHECKING:
    from modelyard.ledger.records import CallRecord
    from modelyard.routing.plan import Decision
    from modelyard.types import ChatRequest

# Cascade hops that handed the request on to the next hop.
_ESCALATED_HOPS = frozenset({"rejected", "failed"})


@dataclass(frozen=True, slots=True)
class _AttemptSeries:
    """The children one attempt's label set updates."""

    attempts: Any
    latency: Any
    ttft: Any
    input_tokens: Any
    output_tokens: Any
    cost: Any
    escalations: Any


class PrometheusTelemetry:
    """A `Telemetry` that updates the process's Prometheus metrics.

    `key_limit` / `team_limit`: how many distinct keys and teams get their own
    label value (per process) before the rest are counted as `other`."""

    def __init__(
        self,
        *,
        key_limit: int = DEFAULT_LABEL_LIMIT,
        team_limit: int = DEFAULT_LABEL_LIMIT,
        families: Metrics | None = None,
    ) -> None:
        self.m = families or metrics()
        self.key = BoundedLabel(key_limit)
        self.team = BoundedLabel(team_limit)
        self._attempts: dict[tuple[str, str, str, str, str], _AttemptSeries] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    def request_started(self, request_id: str, request: ChatRequest) -> None:
        """Nothing to count until the request ends."""

    def attempt_billed(self, record: CallRecord) -> None:
        labels = (
            record.model_id,
            record.deployment,
            record.status,
            self.key(record.key_id),
            self.team(record.team),
        )
        series = self._attempts.get(labels)
        if series is None:
            series = self._attempts[labels] = self._series(*labels)
        series.attempts.inc()
        series.latency.observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            series.ttft.observe(record.ttft_ms / 1000)
        if record.input_tokens:
            series.input_tokens.inc(record.input_tokens)
        if record.output_tokens:
            series.output_tokens.inc(record.output_tokens)
        if record.cost_usd:
            series.cost.inc(float(record.cost_usd))
        if record.status == "escalated":
            series.escalations.inc()

    def _series(
        self, model: str, deployment: str, status: str, key: str, team: str
    ) -> _AttemptSeries:
        m = self.m
        return _AttemptSeries(
            attempts=m.attempts.labels(model, deployment, status),
            latency=m.attempt_latency.labels(model, deployment),
            ttft=m.ttft.labels(model, deployment),
            input_tokens=m.tokens.labels(model, deployment, key, team, "input"),
            output_tokens=m.tokens.labels(model, deployment, key, team, "output"),
            cost=m.cost.labels(model, deployment, key, team),
            escalations=m.escalations.labels(model, "specialist"),
        )

    def hedge_started(self, decision: Decision, model_id: str) -> None:
        self.m.hedges.labels(model_id).inc()

    def request_ended(self, request_id: str, end: RequestEnd) -> None:
        policy = end.decision.policy if end.decision is not None else NONE
        labels = (policy, end.model_id or NONE, end.status)
        child = self._requests.get(labels)
        if child is None:
            child = self._requests[labels] = self.m.requests.labels(
                labels[0], labels[1], str(labels[2])
            )
        child.inc()
        if end.status == 200:
            for failed in end.failed:
                if not isinstance(failed.error, LowConfidenceError):  # counted as escalated
                    self.m.fallbacks.labels(failed.model_id, type(failed.error).__name__).inc()
        if end.cascade is not None:
            for hop in end.cascade.hops:
                if hop.verdict in _ESCALATED_HOPS and hop.models:
                    self.m.escalations.labels(hop.models[0], "cascade").inc()
