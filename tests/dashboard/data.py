"""A small, known ledger for the dashboard tests, and the figures computed from it
here, independently of the dashboard's own code."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from modelyard.ledger.records import CallRecord

# $ per million tokens: (input, output, cached input), as in tests/stack.py.
PRICES: dict[str, tuple[Decimal, Decimal, Decimal]] = {
    "small": (Decimal("0.10"), Decimal("0.40"), Decimal("0.10")),
    "vision-mid": (Decimal("1.00"), Decimal("4.00"), Decimal("0.25")),
    "frontier": (Decimal("5"), Decimal("25"), Decimal("0.5")),
}
# Key ids with SQL metacharacters and unicode: the filters must treat them as text.
KEYS = ("key-plain", "k'; DROP TABLE call_records;--", "ключ-λ-🔑", None)
TEAMS = ("support", "research", None)
FALLBACK_REQUEST = "req-fallback-0"
# The specialists page draws one bar per tenth of confidence, per task.
CONFIDENCE_BINS = 10


def cost(model: str, tokens_in: int, tokens_out: int, cached: int = 0) -> Decimal:
    p_in, p_out, p_cached = PRICES[model]
    return ((tokens_in - cached) * p_in + cached * p_cached + tokens_out * p_out) / 10**6


def _reasons(candidates: Sequence[str], task: str | None, tokens: int) -> dict[str, Any]:
    return {
        "decision_id": "",
        "policy": "auto",
        "kind": "fallback",
        "requirements": {"task": task, "prompt_tokens": tokens},
        "candidates": [
            {
                "rank": i + 1,
                "model": m,
                "deployment": "bigco" if m == "frontier" else "cheapco",
                "quality": 0.5,
                "expected_cost_usd": f"{cost(m, tokens, 200):.9f}",
                "reason": "ranked by utility",
            }
            for i, m in enumerate(candidates)
        ],
        "rejected": [{"model": "local-llm", "reason": "deployment onprem: no key"}],
        "notes": [],
    }


@dataclass
class Ledger:
    records: list[CallRecord]

    def actual(self) -> Decimal:
        return sum((r.cost_usd for r in self.records if r.status != "shadow"), Decimal(0))

    def counterfactual(self, reference: str | None = None) -> Decimal:
        total = Decimal(0)
        for r in self.records:
            if r.status != "ok" or r.role not in (None, "answer"):
                continue
            model = (
                reference
                or max(r.reasons["candidates"], key=lambda c: Decimal(c["expected_cost_usd"]))[
                    "model"
                ]
            )
            total += cost(model, r.input_tokens, r.output_tokens, r.cached_input_tokens)
        return total


def build(n_requests: int = 120, seed: int = 7, now: datetime | None = None) -> Ledger:
    """`n_requests` requests over the last four days: mostly answered by `small`, some
    after a failed first attempt (fallbacks), some by a specialist (answered or
    escalated), a few needing vision (no `small` candidate)."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    out: list[CallRecord] = []
    for i in range(n_requests):
        at = now - timedelta(hours=rng.uniform(0.5, 96))
        key, team = KEYS[i % len(KEYS)], TEAMS[i % len(TEAMS)]
        tokens_in, tokens_out = rng.randint(50, 4000), rng.randint(10, 800)
        vision = i % 10 == 3
        candidates = ["vision-mid", "frontier"] if vision else ["small", "vision-mid", "frontier"]
        task = "intents" if i % 6 == 1 else ("summary" if i % 2 else None)
        rid = FALLBACK_REQUEST if i == 0 else f"req-{i:04d}"
        base: dict[str, Any] = {
            "request_id": rid,
            "decision_id": f"dec-{i:04d}",
            "policy": "auto",
            "upstream_model": "x",
            "reasons": _reasons(candidates, task, tokens_in),
            "key_id": key,
            "team": team,
        }
        plan: list[tuple[str, str, dict[str, Any]]] = []
        if i % 7 == 0:  # a fallback: the first choice fails, the next answers
            plan.append((candidates[0], "error", {"error_class": "ProviderUnavailableError"}))
            plan.append((candidates[1], "ok", {}))
        elif task == "intents":  # a specialist answers, or escalates to `small`
            confidence = rng.random()
            if confidence >= 0.5:
                plan.append(("small", "ok", {"confidence": confidence}))
            else:
                plan.append(("small", "escalated", {"confidence": confidence}))
                plan.append(("vision-mid", "ok", {}))
        else:
            plan.append((candidates[0], "ok", {}))
        for attempt, (model, status, extra) in enumerate(plan, start=1):
            failed = status == "error"
            used_in, used_out = (0, 0) if failed else (tokens_in, tokens_out)
            out.append(
                CallRecord(
                    id=f"{rid}-a{attempt}",
                    model_id=model,
                    deployment="bigco" if model == "frontier" else "cheapco",
                    attempt=attempt,
                    started_at=at + timedelta(milliseconds=300 * attempt),
                    latency_ms=rng.uniform(80, 900),
                    status=status,  # type: ignore[arg-type]
                    input_tokens=used_in,
                    output_tokens=used_out,
                    cost_usd=cost(model, used_in, used_out),
                    **base,
                    **extra,
                )
            )
    return Ledger(out)
