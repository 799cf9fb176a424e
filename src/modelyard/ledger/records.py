"""The billing record: one per provider attempt, with the decision that caused it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

# `shadow`: a shadowed specialist's answer beside the served one; never billed.
# `cached`: an answer served from the response cache (cost 0, no provider tokens),
# naming the model whose answer it was.
AttemptStatus = Literal[
    "ok", "error", "cancelled", "escalated", "started", "interrupted", "shadow", "cached"
]
# Statuses that are not failures in a usage report: an escalation is a specialist
# that answered but handed the request on because its confidence was too low; a
# cache hit is an answer served.
NOT_ERRORS: frozenset[str] = frozenset({"ok", "escalated", "cached"})
CACHED_STATUS: Final = "cached"
# `started`: written ahead, before the provider call leaves the process; completed
# (same id) when the attempt ends. `interrupted`: a `started` record whose process
# died, closed at start-up and billed at its reservation estimate.
OPEN_STATUS: Final = "started"
INTERRUPTED_STATUS: Final = "interrupted"
# Where a record's token counts came from: the provider's own report, or our
# estimate (tokenizer counts: usage missing, invalid, cut short or interrupted).
UsageSource = Literal["reported", "estimated"]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One provider attempt. Written ahead (`started`, at its reservation estimate)
    before the provider call leaves the process, completed in place when it ends;
    durable before the caller's response finishes. `usage_source` says whether the
    tokens are the provider's report or our estimate.

    `cost_usd` comes from the usage the provider reported (or, for a stream cut
    short, from what was streamed), priced by the model card's pricing.
    `reasons` is the decision's explanation (ranked candidates, rejections),
    JSON-serialisable. Secrets never appear here.
    """

    id: str
    request_id: str
    decision_id: str
    policy: str
    model_id: str
    deployment: str
    upstream_model: str
    attempt: int
    started_at: datetime
    latency_ms: float
    status: AttemptStatus
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    ttft_ms: float | None = None
    error_class: str | None = None
    error_message: str | None = None
    streamed: bool = False
    caller: str | None = None
    scorer_version: str | None = None
    reasons: dict[str, Any] = field(default_factory=dict)
    # A classifier's calibrated confidence in its answer (specialists); None for LLMs.
    confidence: float | None = None
    usage_source: UsageSource = "reported"
    # Several calls per request (cascades): which step (hop, 1-based) of the decision
    # this attempt belongs to, its role (`answer`: the answer the caller was served;
    # `candidate`: any other attempt at an answer; `judge`: a verifier's model call),
    # and the verifier's score of its answer. None for single-step decisions.
    step: int | None = None
    role: str | None = None
    verifier_score: float | None = None
    # m006 (issue 12): who spent it. `caller` above is the end user (`user`).
    key_id: str | None = None
    team: str | None = None
    # Comma-joined tags (`x-modelyard-tags`), for per-tag budgets and usage.
    tags: str | None = None
    # Why the router downgraded or capped this call to fit a budget, if it did.
    budget_note: str | None = None
    # m011: which endpoint the call served: None for chat completions, `embeddings`.
    endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class Exchange:
    """What was asked and answered in one successful attempt, kept only for the tasks
    the config lists under `capture.tasks` (opt-in: prompts may be sensitive). It is
    the raw material for distilling a specialist from a stronger model's answers."""

    record_id: str
    request_id: str
    task: str | None
    model_id: str
    messages: list[dict[str, Any]]
    response: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Spend and calls for one group (model, day, or both) in a usage report."""

    model_id: str | None
    day: date | None
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    # Calls whose process died mid-flight, billed at their reservation estimate.
    interrupted: int = 0
    # Answers served from the response cache (cost 0), counted in `calls` too.
    cached: int = 0


class LedgerStore(Protocol):
    """Where call records go. Implementations: in-memory, SQLite, PostgreSQL."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        ...

    async def close(self) -> None: ...

    async def write(self, record: CallRecord) -> None:
        """Persist `record` durably (committed) before returning."""
        ...

    async def start(self, record: CallRecord) -> None:
        """Write an attempt ahead (status `started`, its reservation estimate as usage),
        committed before returning: before the provider call leaves the process."""
        ...

    async def finish(self, record: CallRecord) -> None:
        """Complete the `started` record with the same id (outcome fields only),
        committed before returning; with no started record, insert `record`."""
        ...

    async def discard(self, record_id: str) -> None:
        """Drop a `started` record whose call never reached the network (not billed)."""
        ...

    async def recover(self) -> int:
        """Close `started` records left by dead processes as `interrupted`, billed at
        their estimate; return how many were closed."""
        ...

    async def records(
        self, *, request_id: str | None = None, limit: int = 1000
    ) -> Sequence[CallRecord]:
        """Records, oldest first, optionally only those of one request."""
        ...

    async def write_exchange(self, exchange: Exchange) -> None:
        """Persist a captured exchange (its record is written first)."""
        ...

    async def exchanges(self, *, task: str, limit: int = 100_000) -> Sequence[Exchange]:
        """Captured exchanges of one task, oldest first."""
        ...

    async def usage(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[Literal["model", "day"]] = ("model", "day"),
    ) -> Sequence[UsageRow]:
        """Spend and calls grouped by model and/or UTC day, within [since, until)."""
        ...

    async def spend(self, scope: SpendScope, since: datetime, until: datetime) -> int:
        """Nano-dollars spent by `scope` in [since, until), open (`started`) attempts
        counted at their reservation estimate: what budgets are rebuilt from."""
        ...


@dataclass(frozen=True, slots=True)
class SpendScope:
    """Whose spend a budget counts: everyone (`global`), one key, team, user or tag."""

    kind: Literal["global", "key", "team", "user", "tag"]
    subject: str = "*"

    def matches(self, record: CallRecord) -> bool:
        """Whether `record` counts against this scope (the in-memory reference)."""
        if self.kind == "global":
            return True
        if self.kind == "tag":
            return self.subject in (record.tags or "").split(",")
        field = {"key": record.key_id, "team": record.team, "user": record.caller}[self.kind]
        return field == self.subject
