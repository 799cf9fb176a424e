"""The offline replay harness: the server's own Engine, answering from outcome data.

`ReplayHarness` turns an `OutcomeSet` into a configuration (one model card per
dataset model, list prices derived from the recorded costs, one `replay`
deployment), builds the Engine with `build_engine()` — the function the server
uses — over a `ReplayProvider`, an in-memory ledger, a fake clock and deterministic
ids, and sends every prompt through `Engine.complete` under the policy being
evaluated. What each request was routed to and what it cost are then read back from
the LEDGER rows, so the figures are what the gateway would have billed.

Two edges differ from a live gateway, on purpose: the clock is frozen (replayed
calls take no time, so deadlines never fire), and health never trips (the breaker
of the single `replay` deployment would otherwise skip every model after a few
prompts with no recorded outcome).
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.catalog.cards import ModelCard
from modelyard.config import Config, parse
from modelyard.engine import Engine, build_engine
from modelyard.errors import ModelyardError
from modelyard.evaluation.metrics import PER_1K, Point
from modelyard.evaluation.replay import DEPLOYMENT, ReplayProvider, prompt_metadata
from modelyard.learned.outcomes import OutcomeSet
from modelyard.ledger.memory import InMemoryLedger
from modelyard.ledger.records import CallRecord
from modelyard.routing.plan import Score
from modelyard.routing.scorers import Scorer
from modelyard.types import ChatRequest, Message, Requirements, RoutingHints

# Replayed models serve any prompt in the data: no window or output cap gets in the way.
CONTEXT_WINDOW = 10_000_000
MAX_OUTPUT_TOKENS = 1_000_000
# Without token counts, a price per token is what makes the card's cost estimate at a
# typical request (prompt + this many output tokens) equal the mean recorded cost.
_TYPICAL_TOKENS = 600
START = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock:
    """Wall time that steps 1 ms per reading from a fixed start; monotonic time frozen."""

    def __init__(self, start: datetime = START, step: timedelta = timedelta(milliseconds=1)):
        self._start = start
        self._step = step
        self._ticks = itertools.count()

    def now(self) -> datetime:
        return self._start + next(self._ticks) * self._step

    def monotonic(self) -> float:
        return 0.0


class AlwaysHealthy:
    """A `HealthState` that never skips a deployment (see the module docstring)."""

    def unavailable(self, now: float) -> Mapping[str, str]:
        return {}

    def acquire(self, deployment: str, now: float) -> bool:
        return True

    def record_success(self, deployment: str, now: float) -> None:
        pass

    def record_failure(self, deployment: str, error: ModelyardError, now: float) -> None:
        pass

    def release(self, deployment: str) -> None:
        pass


def counter_ids(prefix: str = "id") -> Callable[[], str]:
    """Deterministic ids: prefix-00000001, prefix-00000002, …"""
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter):08d}"


def derive_prices(data: OutcomeSet) -> dict[str, tuple[Decimal, Decimal]]:
    """Per model, ($/Mtok input, $/Mtok output) that reproduce its recorded costs.

    With token counts: a least-squares fit of cost on (input, output) tokens, kept
    non-negative (exact when the data was priced per token, as AlpacaEval's was).
    Without them: one price per token that makes a typical request cost the mean
    recorded cost.
    """
    prices: dict[str, tuple[Decimal, Decimal]] = {}
    for j, model in enumerate(data.models):
        cost = data.cost_usd[:, j]
        tin, tout = data.input_tokens[:, j], data.output_tokens[:, j]
        known = ~np.isnan(cost) & (tin >= 0) & (tout >= 0)
        if known.sum() >= 2 and (tin[known].sum() + tout[known].sum()) > 0:
            design = np.stack([tin[known], tout[known]], axis=1).astype(float) / 1e6
            p_in, p_out = _non_negative_fit(design, cost[known])
        else:
            mean = float(np.nanmean(cost)) if (~np.isnan(cost)).any() else 0.0
            p_in = p_out = mean * 1e6 / _TYPICAL_TOKENS
        prices[model] = (_price(p_in), _price(p_out))
    return prices


def _non_negative_fit(
    design: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Least squares for two non-negative coefficients: the joint fit, or else the better
    of the two one-variable fits (which is what NNLS reduces to with two columns)."""
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    if a >= 0 and b >= 0:
        return float(a), float(b)
    best: tuple[float, float, float] = (np.inf, 0.0, 0.0)
    for col in (0, 1):
        x = design[:, col]
        coef = max(float(x @ y) / float(x @ x), 0.0) if float(x @ x) > 0 else 0.0
        err = float(np.sum((y - coef * x) ** 2))
        if err < best[0]:
            best = (err, coef if col == 0 else 0.0, coef if col == 1 else 0.0)
    return best[1], best[2]


def _price(value: float) -> Decimal:
    """Six significant digits, never negative, no exponent notation."""
    return Decimal(f"{max(value, 0.0):.6g}").normalize() + Decimal(0)


def replay_config(
    data: OutcomeSet,
    policies: Mapping[str, Mapping[str, Any]],
    *,
    prior_quality: Mapping[str, float] | None = None,
    max_attempts: int = 3,
) -> Config:
    """A validated config: one card per dataset model on the `replay` deployment.

    `policies` maps a policy name to its settings (with `type`); a `best` policy is
    added as the default. `prior_quality` sets each card's quality prior (e.g. the
    model's mean quality on the training prompts); default 0.5."""
    prices = derive_prices(data)
    priors = prior_quality or {}
    models = {
        model: {
            "deployment": DEPLOYMENT,
            "upstream": model,
            "capabilities": ["text", "streaming"],
            "context_window": CONTEXT_WINDOW,
            "max_output_tokens": MAX_OUTPUT_TOKENS,
            "prices": {"input": str(p_in), "output": str(p_out)},
            "quality": {"default": round(float(priors.get(model, 0.5)), 6)},
        }
        for model, (p_in, p_out) in prices.items()
    }
    raw = {
        "deployments": {DEPLOYMENT: {"adapter": "openai", "base_url": f"replay://{data.name}"}},
        "models": models,
        "policies": {"best": {"type": "best"}, **{k: dict(v) for k, v in policies.items()}},
        "default_policy": "best",
        "resilience": {"max_attempts": max_attempts},
    }
    return parse(raw, f"replay of {data.name}")


class MemoScorer:
    """Remembers another scorer's scores per (conversation, requirements, cards).

    A sweep sends each prompt through the same scorer once per knob value; the scores
    cannot change between those calls, so computing them once removes the repeat
    cost without taking the scorer (or the Engine) out of the path."""

    def __init__(self, inner: Scorer) -> None:
        self.inner = inner
        self.version = inner.version
        self._memo: dict[tuple[Any, ...], list[Score]] = {}

    def score(
        self, request: ChatRequest, req: Requirements, cards: Sequence[ModelCard]
    ) -> list[Score]:
        key = (
            tuple(m.text() for m in request.messages),
            req.prompt_tokens,
            req.max_output_tokens,
            req.task,
            tuple(c.id for c in cards),
        )
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self.inner.score(request, req, cards)
        return found


@dataclass(frozen=True, slots=True)
class RoutedRun:
    """One policy over some prompts, as read back from the ledger.

    `rows` are dataset rows; `model` the index of the model that answered (-1: the
    request failed); `cost` every attempt's billed cost summed, in dollars."""

    policy: str
    rows: npt.NDArray[np.int64]
    model: npt.NDArray[np.int64]
    cost: npt.NDArray[np.float64]
    quality: npt.NDArray[np.float64]
    attempts: npt.NDArray[np.int64]
    failed: int

    def point(self, label: str | None = None, knob: float | None = None) -> Point:
        return Point(
            label or self.policy,
            float(self.cost.mean()) * PER_1K,
            float(self.quality.mean()),
            knob=knob,
        )

    def share(self, model: int) -> float:
        """Share of requests answered by model column `model`."""
        return float((self.model == model).mean())


@dataclass
class ReplayHarness:
    """An Engine over `data` with the given policies; see the module docstring."""

    data: OutcomeSet
    policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    scorer: Scorer | None = None
    prior_quality: Mapping[str, float] | None = None
    seed: int = 0
    memo: bool = True
    engine: Engine = field(init=False)
    ledger: InMemoryLedger = field(init=False)
    provider: ReplayProvider = field(init=False)
    _requests: dict[str, tuple[str, int]] = field(init=False, default_factory=dict)
    _ids: Callable[[], str] = field(init=False)

    def __post_init__(self) -> None:
        config = replay_config(self.data, self.policies, prior_quality=self.prior_quality)
        self.provider = ReplayProvider(self.data)
        self.ledger = InMemoryLedger()
        clock = FakeClock()
        self._ids = counter_ids("req")
        scorer = self.scorer
        if scorer is not None and self.memo and not isinstance(scorer, MemoScorer):
            scorer = MemoScorer(scorer)
        self.engine = build_engine(
            config,
            env={},
            ledger=self.ledger,
            providers={DEPLOYMENT: self.provider},
            scorer=scorer,
            rng=random.Random(self.seed),
            ids=counter_ids("rec"),
            source=f"replay of {self.data.name}",
            health=AlwaysHealthy(),
            clock=clock.now,
            monotonic=clock.monotonic,
        )

    async def __aenter__(self) -> ReplayHarness:
        await self.ledger.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ledger.close()

    def request(self, row: int, policy: str, *, stream: bool = False) -> ChatRequest:
        """The chat request that replays prompt `row` under `policy` (or a model id).

        It declares the prompt's source (e.g. `mmlu-pro/math`) as its task, as a
        client that knows its own traffic would (`modelyard: {task: ...}`); the
        per-category baseline routes on it."""
        prompt = self.data.prompts[row]
        return ChatRequest(
            model=policy,
            messages=[Message.model_validate(m) for m in prompt.messages],
            stream=stream,
            modelyard=RoutingHints(task=prompt.source),
            **prompt_metadata(prompt.id),
        )

    def next_request_id(self, row: int, policy: str) -> str:
        """A fresh request id, remembered with the (policy, row) it replays."""
        request_id = self._ids()
        self._requests[request_id] = (policy, row)
        return request_id

    async def run(self, policy: str, rows: Iterable[int], *, stream: bool = False) -> None:
        """Send each prompt in `rows` through `Engine.complete` (or `Engine.stream`,
        read to the end) under `policy`. A request that fails (nothing qualifies, every
        attempt failed) leaves only its attempts in the ledger, and counts as failed in
        `results()`."""
        for row in rows:
            request_id = self.next_request_id(row, policy)
            request = self.request(row, policy, stream=stream)
            try:
                if stream:
                    live = await self.engine.stream(request, request_id=request_id)
                    async for _ in live:
                        pass
                else:
                    await self.engine.complete(request, request_id=request_id)
            except ModelyardError:
                continue

    async def records(self) -> Sequence[CallRecord]:
        return await self.ledger.records(limit=2**62)

    async def results(self) -> dict[str, RoutedRun]:
        """Every policy run so far, rebuilt from the ledger rows."""
        by_request: dict[str, list[CallRecord]] = defaultdict(list)
        for record in await self.records():
            by_request[record.request_id].append(record)
        columns = {m: j for j, m in enumerate(self.data.models)}
        per_policy: dict[str, list[tuple[int, int, float, int]]] = defaultdict(list)
        for request_id, (policy, row) in self._requests.items():
            attempts = by_request.get(request_id, [])
            # The served answer: a cascade's judge calls and its unchosen answers are
            # billed `ok` too, but only the record with role `answer` reached the caller.
            answered = [r for r in attempts if r.status == "ok" and r.role in (None, "answer")]
            model = columns[answered[-1].model_id] if answered else -1
            cost = float(sum((r.cost_usd for r in attempts), Decimal(0)))
            per_policy[policy].append((row, model, cost, len(attempts)))
        return {policy: self._run(policy, items) for policy, items in per_policy.items()}

    def _run(self, policy: str, items: list[tuple[int, int, float, int]]) -> RoutedRun:
        rows = np.array([i[0] for i in items], dtype=np.int64)
        model = np.array([i[1] for i in items], dtype=np.int64)
        answered = model >= 0
        quality = np.zeros(len(items))
        quality[answered] = np.nan_to_num(self.data.quality[rows[answered], model[answered]])
        return RoutedRun(
            policy=policy,
            rows=rows,
            model=model,
            cost=np.array([i[2] for i in items]),
            quality=quality,
            attempts=np.array([i[3] for i in items], dtype=np.int64),
            failed=int((~answered).sum()),
        )
