"""Shadow mode: a specialist answers alongside the normal route until it has earned
the right to serve.

With `mode: shadow` in its `specialists:` entry, a specialist gets a deployment but
no card, so the router never picks it. After the normal route has answered a
request of its task, the executor hands the exchange to a `ShadowRunner`, which
asks the specialist in the background (the caller's answer is not delayed) and
writes one ledger record per request:

    status "shadow", cost 0 (never billed to the caller), the confidence, and in
    `reasons["shadow"]`: its label, the served answer parsed into its label set,
    whether they agree, whether it would have escalated (and why, with both
    scores), and what the served answer cost.

`modelyard specialist status NAME` summarises the last N of those records
(agreement, coverage, projected saving), and `promote` writes `promoted.json`
beside the versions when the agreement meets the user's target; a promoted
specialist serves from the next start. With `promote_at` in the config the runner
writes it itself once the last N comparable answers agree often enough.
Shadowed tasks are captured (prompt and served answer) so `distill` can retrain
from the same traffic.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from modelyard.config import ShadowPromotion
from modelyard.errors import LowConfidenceError, ModelyardError
from modelyard.ledger.records import AttemptStatus, CallRecord, LedgerStore
from modelyard.providers.base import ChatProvider
from modelyard.types import ChatRequest, money_text

log = logging.getLogger(__name__)
PROMOTED = "promoted.json"
SHADOW_STATUS: AttemptStatus = "shadow"
SHADOW_POLICY = "shadow"


@dataclass(frozen=True, slots=True)
class Shadow:
    """One shadowed specialist: where it is served from and what it knows."""

    name: str
    task: str
    model_id: str
    deployment: str
    upstream: str
    labels: tuple[str, ...]
    name_dir: Path
    promote_at: ShadowPromotion | None = None


def is_promoted(name_dir: Path) -> bool:
    return (name_dir / PROMOTED).is_file()


def write_promotion(name_dir: Path, summary: ShadowSummary, how: str) -> Path:
    """Mark the specialist as serving (read at the next start)."""
    out = name_dir / PROMOTED
    payload = {
        "promoted_at": datetime.now(UTC).isoformat(),
        "how": how,
        "agreement": summary.agreement,
        "compared": summary.compared,
        "coverage": summary.coverage,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return out


@dataclass(frozen=True, slots=True)
class _Served:
    request_id: str
    decision_id: str
    model: str
    answer: str | None
    cost: Decimal


@dataclass
class ShadowRunner:
    """Runs shadowed specialists in the background after the served answer."""

    shadows: Mapping[str, Shadow]  # by task
    providers: Mapping[str, ChatProvider]
    ledger: LedgerStore
    ids: Callable[[], str]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _pending: set[asyncio.Task[None]] = field(default_factory=set)
    _windows: dict[str, deque[bool]] = field(default_factory=dict)

    def observe(
        self,
        *,
        task: str | None,
        request: ChatRequest,
        request_id: str,
        decision_id: str,
        served_model: str,
        answer: str | None,
        served_cost: Decimal,
    ) -> None:
        """Schedule the shadow answer for a served request of a shadowed task."""
        shadow = self.shadows.get(task or "")
        if shadow is None or served_model == shadow.model_id:
            return
        if shadow.deployment not in self.providers:  # unavailable at start-up: nothing to ask
            return
        served = _Served(request_id, decision_id, served_model, answer, served_cost)
        work = self._run(shadow, request, served)
        # Background: the caller's response does not wait for the shadow answer.
        pending = asyncio.get_running_loop().create_task(work)
        self._pending.add(pending)
        pending.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the shadow answers still running (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _run(
        self,
        shadow: Shadow,
        request: ChatRequest,
        served: _Served,
    ) -> None:
        started = self.clock()
        request_id = served.request_id
        provider = self.providers[shadow.deployment]
        escalate: dict[str, Any] | None = None
        try:
            try:
                completion = await provider.complete(request, shadow.upstream)
            except LowConfidenceError as exc:
                completion = exc.completion
                escalate = {"reason": exc.code, "message": exc.message}
        except ModelyardError as exc:  # a broken shadow must never touch the served path
            log.warning("shadow %s failed on request %s: %s", shadow.model_id, request_id, exc)
            return
        from modelyard.specialists.distill import LabelParser  # NumPy-free, but not needed before

        parser = LabelParser(shadow.labels)
        label, served_label = parser.parse(completion.content), parser.parse(served.answer)
        agree = None if served_label is None or label is None else label == served_label
        latency = (self.clock() - started).total_seconds() * 1000
        record = CallRecord(
            id=self.ids(),
            request_id=request_id,
            decision_id=served.decision_id,
            policy=SHADOW_POLICY,
            model_id=shadow.model_id,
            deployment=shadow.deployment,
            upstream_model=shadow.upstream,
            attempt=0,
            started_at=started,
            latency_ms=latency,
            status=SHADOW_STATUS,
            input_tokens=completion.usage.input_tokens,
            cost_usd=Decimal(0),
            confidence=completion.confidence,
            reasons={
                "shadow": {
                    "label": label,
                    "served_model": served.model,
                    "served_label": served_label,
                    "agree": agree,
                    "escalate": escalate,
                    "served_cost_usd": money_text(served.cost),
                }
            },
        )
        await self.ledger.write(record)
        if agree is not None:
            self._maybe_promote(shadow, agree)

    def _maybe_promote(self, shadow: Shadow, agree: bool) -> None:
        rule = shadow.promote_at
        if rule is None or is_promoted(shadow.name_dir):
            return
        window = self._windows.setdefault(shadow.name, deque(maxlen=rule.last))
        window.append(agree)
        if len(window) == rule.last and sum(window) / rule.last >= rule.agreement:
            rate = sum(window) / rule.last
            summary = ShadowSummary(rule.last, rule.last, rate, 1.0, Decimal(0), Decimal(0))
            write_promotion(shadow.name_dir, summary, f"automatic (promote_at {rule.agreement})")
            log.warning(
                "%s agreed on %.1f%% of the last %d shadowed requests: promoted; it serves "
                "from the next start",
                shadow.model_id,
                100 * summary.agreement,
                rule.last,
            )


@dataclass(frozen=True, slots=True)
class ShadowSummary:
    """What `modelyard specialist status` prints for the last `shadowed` records."""

    shadowed: int
    compared: int  # the served answer parsed into the label set
    agreement: float  # of `compared`
    coverage: float  # share it would have answered (not escalated)
    served_cost: Decimal  # what the served answers cost
    projected_saving: Decimal  # the served cost of the requests it would have answered


def summarise(records: Sequence[CallRecord], model_id: str, last: int) -> ShadowSummary:
    """The last `last` shadow records of `model_id` (records oldest first)."""
    mine = [r for r in records if r.model_id == model_id and r.status == SHADOW_STATUS][-last:]
    info = [r.reasons.get("shadow", {}) for r in mine]
    compared = [i["agree"] for i in info if i.get("agree") is not None]
    answered = [i for i in info if not i.get("escalate")]
    served = sum((Decimal(i.get("served_cost_usd", "0")) for i in info), Decimal(0))
    saving = sum((Decimal(i.get("served_cost_usd", "0")) for i in answered), Decimal(0))
    return ShadowSummary(
        shadowed=len(mine),
        compared=len(compared),
        agreement=sum(compared) / len(compared) if compared else 0.0,
        coverage=len(answered) / len(mine) if mine else 0.0,
        served_cost=served,
        projected_saving=saving,
    )
