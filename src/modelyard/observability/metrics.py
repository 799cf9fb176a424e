"""The Prometheus metrics modelyard exports, defined once per process on the global
`REGISTRY` (so metrics other modules register there, such as the load shedder's,
are scraped alongside).

Every name is listed in `EXPORTED` (the example Grafana dashboard's test checks its
queries against it). Gauges carry a `multiprocess_mode` for `--workers N`
(`PROMETHEUS_MULTIPROC_DIR`): a breaker is reported open if any live worker has it
open (`livemax`); a budget's headroom is the value most recently sampled
(`livemostrecent`: every worker reads the same shared counters).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

# Seconds. Attempts span fast local models to long reasoning answers.
LATENCY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS: Final = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
# Breaker states as gauge values (the larger, the worse: `livemax` keeps the worst).
BREAKER_VALUES: Final = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


@dataclass(frozen=True, slots=True)
class Metrics:
    """The metric families; see the README's "Metrics and traces" for each one."""

    requests: Counter
    attempts: Counter
    attempt_latency: Histogram
    ttft: Histogram
    tokens: Counter
    cost: Counter
    key_tokens: Counter
    key_cost: Counter
    fallbacks: Counter
    escalations: Counter
    hedges: Counter
    breaker_state: Gauge
    breaker_failures: Gauge
    cooldown: Gauge
    budget_remaining: Gauge
    budget_limit: Gauge


@functools.cache
def metrics() -> Metrics:
    """The metric families, created on first use (once per process)."""
    return Metrics(
        requests=Counter(
            "modelyard_requests",
            "Chat requests by policy, the model that answered ('none': no answer) and HTTP "
            "status ('499': the client went away)",
            ["policy", "model", "status"],
        ),
        attempts=Counter(
            "modelyard_attempts",
            "Provider attempts (one per ledger record) by ledger status",
            ["model", "deployment", "status"],
        ),
        attempt_latency=Histogram(
            "modelyard_attempt_latency_seconds",
            "Provider attempt duration, from the call leaving to its end",
            ["model", "deployment"],
            buckets=LATENCY_BUCKETS,
        ),
        ttft=Histogram(
            "modelyard_time_to_first_token_seconds",
            "Streamed attempts: time to the first content chunk",
            ["model", "deployment"],
            buckets=TTFT_BUCKETS,
        ),
        tokens=Counter(
            "modelyard_tokens",
            "Billed tokens by model and type (input, output)",
            ["model", "deployment", "type"],
        ),
        cost=Counter(
            "modelyard_cost_usd",
            "Billed cost in US dollars by model (float: the ledger holds the exact Decimal)",
            ["model", "deployment"],
        ),
        # Who spent it, apart from on what: a key x model product would multiply the
        # series (the ledger and `modelyard usage --by key,model` have that cross view).
        key_tokens=Counter(
            "modelyard_key_tokens",
            "Billed tokens by key, team and type ('none': no key; 'other': past the bound)",
            ["key", "team", "type"],
        ),
        key_cost=Counter(
            "modelyard_key_cost_usd",
            "Billed cost in US dollars by key and team ('none': no key; 'other': past the bound)",
            ["key", "team"],
        ),
        fallbacks=Counter(
            "modelyard_fallbacks",
            "Failed attempts whose request another model then answered, by failed model "
            "and error class",
            ["model", "reason"],
        ),
        escalations=Counter(
            "modelyard_escalations",
            "Answers handed on to a stronger model: a specialist below its confidence "
            "threshold (kind=specialist) or a cascade hop its verifier rejected (kind=cascade)",
            ["model", "kind"],
        ),
        hedges=Counter(
            "modelyard_hedges",
            "Runner-ups started to race a slow first choice, by the runner-up's model",
            ["model"],
        ),
        breaker_state=Gauge(
            "modelyard_breaker_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open",
            ["deployment"],
            multiprocess_mode="livemax",
        ),
        breaker_failures=Gauge(
            "modelyard_breaker_consecutive_failures",
            "Consecutive failures counted by the deployment's breaker",
            ["deployment"],
            multiprocess_mode="livemax",
        ),
        cooldown=Gauge(
            "modelyard_cooldown_seconds",
            "Seconds a deployment stays skipped: reason=breaker (open circuit) or "
            "reason=rate_limit (after a 429)",
            ["deployment", "reason"],
            multiprocess_mode="livemax",
        ),
        budget_remaining=Gauge(
            "modelyard_budget_remaining_usd",
            "Headroom of each budget now: limit minus spend and open reservations",
            ["scope", "subject", "period"],
            multiprocess_mode="livemostrecent",
        ),
        budget_limit=Gauge(
            "modelyard_budget_limit_usd",
            "Each budget's limit over its period",
            ["scope", "subject", "period"],
            multiprocess_mode="livemostrecent",
        ),
    )


# Names as they appear in the exposition (counters gain `_total`, histograms
# `_bucket`/`_sum`/`_count`).
EXPORTED: Final = frozenset(
    {
        "modelyard_requests_total",
        "modelyard_attempts_total",
        "modelyard_attempt_latency_seconds_bucket",
        "modelyard_attempt_latency_seconds_sum",
        "modelyard_attempt_latency_seconds_count",
        "modelyard_time_to_first_token_seconds_bucket",
        "modelyard_time_to_first_token_seconds_sum",
        "modelyard_time_to_first_token_seconds_count",
        "modelyard_tokens_total",
        "modelyard_cost_usd_total",
        "modelyard_key_tokens_total",
        "modelyard_key_cost_usd_total",
        "modelyard_fallbacks_total",
        "modelyard_escalations_total",
        "modelyard_hedges_total",
        "modelyard_breaker_state",
        "modelyard_breaker_consecutive_failures",
        "modelyard_cooldown_seconds",
        "modelyard_budget_remaining_usd",
        "modelyard_budget_limit_usd",
    }
)

# Families other modules register on the default registry, which `/metrics` serves
# too: the overload shedder's counter (`server/shedding.py`, issue 14).
ALSO_EXPORTED: Final = frozenset({"modelyard_requests_shed_total"})
