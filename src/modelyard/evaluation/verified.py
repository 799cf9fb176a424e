"""Cascades with a `learned` verifier in the replay harness (for data with answers but
no parsed final answer to vote on, such as AlpacaEval).

Per split, a verifier is trained on the TRAINING prompts' recorded answers (every
model's, labelled good when quality ≥ 0.5) with the NumPy hashing encoder (its
verdicts take well under a millisecond). A candidate is `[cheap model] → best`: the
cheap model's answer is served when the verifier's probability reaches a threshold,
else the best single model answers. Thresholds are quantiles of the verifier's
training-side scores for that model; the family's curve and operating point are then
chosen on the training side exactly as for agreement cascades (`cascades`), and the
operating point is replayed through the Engine with the trained artifact.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.embeddings import Encoder, load_encoder
from modelyard.evaluation.cascades import (
    CascadeResult,
    Emulated,
    cheap_pool,
    choose_and_sweep,
)
from modelyard.evaluation.sweep import Side
from modelyard.learned.outcomes import OutcomeSet
from modelyard.verifiers.learned import LogisticModel, features, tail
from modelyard.verifiers.learned_train import examples, train_verifier

Floats = npt.NDArray[np.float64]
FAMILY = "cascade-learned"
VERIFIER_ENCODER = "hashing-256"
THRESHOLDS = 8


@dataclass(frozen=True, slots=True)
class VerifiedCandidate:
    """`[model] → last` with a learned verifier at `threshold` (`last` None: alone)."""

    model: str
    threshold: float
    last: str | None
    artifact: str

    @property
    def first(self) -> tuple[str, ...]:
        return (self.model,)

    @property
    def name(self) -> str:
        if self.last is None:
            return self.model
        return f"learned≥{self.threshold:.3f}({self.model}) > {self.last}"

    def settings(self) -> dict[str, Any]:
        if self.last is None:
            return {"type": "fixed", "model": self.model}
        return {
            "type": "cascade",
            "tiers": [self.model, self.last],
            "verifier": {"type": "learned", "artifact": self.artifact, "threshold": self.threshold},
        }


def answer_scores(
    model: LogisticModel, encoder: Encoder, data: OutcomeSet, rows: npt.NDArray[np.int64], name: str
) -> Floats:
    """The verifier's probability for `name`'s recorded answer on each row, computed
    as `LearnedVerifier.score` computes it."""
    words = model.tail_words
    prompts = [data.prompts[int(r)].text for r in rows]
    answers = [data.responses.get((data.prompts[int(r)].id, name), "") for r in rows]
    p = encoder.encode([tail(t, words) for t in prompts])
    a = encoder.encode([tail(t, words) for t in answers])
    return np.asarray(model.predict(features(p, a, answers)), dtype=np.float64)


def _emulate(
    cand: VerifiedCandidate, data: OutcomeSet, rows: npt.NDArray[np.int64], scores: Floats
) -> Emulated:
    m = data.model_index(cand.model)
    ones = np.ones(len(rows), dtype=np.int64)
    if cand.last is None:
        return Emulated(m * ones, data.cost_usd[rows, m], ones, m * ones)
    last = data.model_index(cand.last)
    accepted = scores >= cand.threshold
    served = np.where(accepted, m, last)
    cost = data.cost_usd[rows, m] + np.where(accepted, 0.0, data.cost_usd[rows, last])
    return Emulated(served.astype(np.int64), cost, np.where(accepted, 1, 2), m * ones)


async def run_learned_cascades(
    train: Side, test: Side, split: str, best: str, size: int, seed: int = 0
) -> CascadeResult:
    """Train the verifier on `train`, build and choose there, sweep `test`, replay."""
    result = CascadeResult(split, best, family=FAMILY)
    prompts, answers, labels = examples(train.data, [int(r) for r in train.rows])
    if len(set(labels)) < 2:
        return result
    encoder = load_encoder(VERIFIER_ENCODER)
    model = train_verifier(prompts, answers, labels, encoder, threshold=0.5, seed=seed)
    artifact = str(model.save(Path(tempfile.mkdtemp(prefix="modelyard-verifier-"))))
    pool, alone = cheap_pool(train.data, train.rows, best)
    scores = {
        side: {m: answer_scores(model, encoder, s.data, s.rows, m) for m in pool}
        for side, s in (("train", train), ("test", test))
    }
    levels: list[VerifiedCandidate] = [VerifiedCandidate(m, 0.0, None, artifact) for m in alone]
    for m in pool:
        grid = np.unique(np.quantile(scores["train"][m], np.linspace(0.05, 0.95, THRESHOLDS)))
        levels += [VerifiedCandidate(m, float(t), best, artifact) for t in grid]

    def on(side: str, s: Side) -> Any:
        def emulate(c: VerifiedCandidate) -> Emulated:
            got = scores[side].get(c.model, np.zeros(len(s.rows)))
            return _emulate(c, s.data, s.rows, got)

        return emulate

    return await choose_and_sweep(
        result, levels, on("train", train), on("test", test), train, test, size, seed
    )
