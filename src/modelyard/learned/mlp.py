"""Heads on prompt embeddings: per-model logistic regressions or MLPs, or one shared
MLP with an output per model.

Each catalog model gets its own head (trained in `mlp_fit` with scikit-learn), or
with `shared` one network predicts every model at once from a hidden layer they
share (the prompt features that matter for one model, difficulty above all, matter
for the others: one fit instead of one per model, and each model's head learns from
every model's outcomes). Inference is a couple of batched NumPy products:

    logistic: q_m = σ(x·w_m + b_m)
    mlp:      q_m = clip(relu(x·W1_m + b1_m)·w2_m + b2_m, 0, 1)
    shared:   q   = clip(relu(x·W1 + b1)·W2 + b2, 0, 1)        (q has one column per model)
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from modelyard.learned.predictors import Arrays, Floats, Vectors, require, sigmoid

Head = Literal["logistic", "mlp", "shared"]
HEADS: tuple[Head, ...] = ("logistic", "mlp", "shared")


class MlpPredictor:
    kind: ClassVar[str] = "mlp"

    def __init__(self, head: Head, weights: Arrays, params: dict[str, Any]) -> None:
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r} ({', '.join(HEADS)})")
        self.head: Head = head
        self._params = {**params, "head": head}
        if head == "logistic":
            w, b = require(weights, "w", "b")
            self.w, self.b = w.astype(np.float32), b.astype(np.float64)
        else:
            w1, b1, w2, b2 = require(weights, "w1", "b1", "w2", "b2")
            self.w1 = w1.astype(np.float32)  # mlp (m, dim, hidden); shared (dim, hidden)
            self.b1 = b1.astype(np.float32)  # mlp (m, hidden); shared (hidden,)
            self.w2 = w2.astype(np.float32)  # mlp (m, hidden); shared (hidden, m)
            self.b2 = b2.astype(np.float64)  # (m,)

    def predict(self, x: Vectors) -> Floats:
        x = np.asarray(x, dtype=np.float32)
        if self.head == "logistic":
            return sigmoid((x @ self.w.T).astype(np.float64) + self.b)
        if self.head == "shared":
            shared = np.maximum(x @ self.w1 + self.b1, 0.0)
            out = (shared @ self.w2).astype(np.float64) + self.b2
        else:
            hidden = np.maximum(np.einsum("nd,mdh->nmh", x, self.w1) + self.b1, 0.0)
            out = np.einsum("nmh,mh->nm", hidden, self.w2).astype(np.float64) + self.b2
        clipped: Floats = np.clip(out, 0.0, 1.0)
        return clipped

    def arrays(self) -> Arrays:
        if self.head == "logistic":
            return {"w": self.w, "b": self.b}
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @classmethod
    def from_state(cls, arrays: Arrays, params: dict[str, Any]) -> MlpPredictor:
        head = params.get("head")
        if head not in HEADS:
            raise ValueError(
                f"manifest params.head must be one of {', '.join(HEADS)}, got {head!r}"
            )
        return cls(head, arrays, params)
