"""Counters and histograms fed by the engine's hooks: one ledger record per provider
attempt (the same record that was billed, so counts and cost agree with the
ledger), one end per caller request, one event per hedge.

Label children are looked up once per distinct label set and cached, so the hot
path is two dict lookups and a few increments. No label carries prompt text,
request ids or decision ids; keys and teams go through `BoundedLabel`s, and are
counted apart from models (no key x model product of series).
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
class _ModelSeries:
    """The children one (model, deployment, status) updates."""

    attempts: Any
    latency: Any
    ttft: Any
    input_tokens: Any
    output_tokens: Any
    cost: Any
    escalations: Any


@dataclass(frozen=True, slots=True)
class _SpenderSeries:
    """The children one (key, team) updates."""

    input_tokens: Any
    output_tokens: Any
    cost: Any


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
        self._models: dict[tuple[str, str, str], _ModelSeries] = {}
        self._spenders: dict[tuple[str, str], _SpenderSeries] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    def request_started(self, request_id: str, request: ChatRequest) -> None:
        """Nothing to count until the request ends."""

    def attempt_billed(self, record: CallRecord) -> None:
        m = self._models.get((record.model_id, record.deployment, record.status))
        if m is None:
            m = self._model_series(record.model_id, record.deployment, record.status)
        spender = (self.key(record.key_id), self.team(record.team))
        s = self._spenders.get(spender)
        if s is None:
            s = self._spender_series(*spender)
        m.attempts.inc()
        m.latency.observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            m.ttft.observe(record.ttft_ms / 1000)
        if record.input_tokens:
            m.input_tokens.inc(record.input_tokens)
            s.input_tokens.inc(record.input_tokens)
        if record.output_tokens:
            m.output_tokens.inc(record.output_tokens)
            s.output_tokens.inc(record.output_tokens)
        if record.cost_usd:
            cost = float(record.cost_usd)
            m.cost.inc(cost)
            s.cost.inc(cost)
        if record.status == "escalated":
            m.escalations.inc()

    def _model_series(self, model: str, deployment: str, status: str) -> _ModelSeries:
        f = self.m
        series = _ModelSeries(
            attempts=f.attempts.labels(model, deployment, status),
            latency=f.attempt_latency.labels(model, deployment),
            ttft=f.ttft.labels(model, deployment),
            input_tokens=f.tokens.labels(model, deployment, "input"),
            output_tokens=f.tokens.labels(model, deployment, "output"),
            cost=f.cost.labels(model, deployment),
            escalations=f.escalations.labels(model, "specialist"),
        )
        self._models[(model, deployment, status)] = series
        return series

    def _spender_series(self, key: str, team: str) -> _SpenderSeries:
        f = self.m
        series = _SpenderSeries(
            input_tokens=f.key_tokens.labels(key, team, "input"),
            output_tokens=f.key_tokens.labels(key, team, "output"),
            cost=f.key_cost.labels(key, team),
        )
        self._spenders[(key, team)] = series
        return series

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
