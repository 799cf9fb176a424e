"""Matrix factorisation over (prompt embedding, model), RouteLLM's MF generalised to
N models and to graded quality.

Each model m has a learned vector v_m; a prompt's embedding e_p is projected by W
into the same latent space, and

    q̂(p, m) = σ( w · (W e_p ⊙ v_m) + b_m )

so models that do well on the same kinds of prompt end up with similar vectors,
and what is learned about one model's strengths informs the others (unlike the
independent per-model heads). Fitted in `mf_fit` (torch); inference is NumPy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from modelyard.learned.predictors import Arrays, Floats, Vectors, require, sigmoid


class MfPredictor:
    kind: ClassVar[str] = "mf"

    def __init__(self, weights: Arrays, params: dict[str, Any]) -> None:
        projection, model_vectors, w, bias = require(
            weights, "projection", "model_vectors", "w", "bias"
        )
        self.projection = projection.astype(np.float32)  # W: (latent, dim)
        self.model_vectors = model_vectors.astype(np.float32)  # v: (models, latent)
        self.w = w.astype(np.float32)  # (latent,)
        self.bias = bias.astype(np.float64)  # b: (models,)
        # w · (W e ⊙ v_m) = (W e) · (w ⊙ v_m): fold w into the model vectors once.
        self._scaled = np.ascontiguousarray((self.model_vectors * self.w).T)
        self._params = dict(params)

    def logits(self, x: Vectors) -> Floats:
        latent = np.asarray(x, dtype=np.float32) @ self.projection.T
        return (latent @ self._scaled).astype(np.float64) + self.bias

    def predict(self, x: Vectors) -> Floats:
        return sigmoid(self.logits(x))

    def arrays(self) -> Arrays:
        return {
            "projection": self.projection,
            "model_vectors": self.model_vectors,
            "w": self.w,
            "bias": self.bias,
        }

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @classmethod
    def from_state(cls, arrays: Arrays, params: dict[str, Any]) -> MfPredictor:
        return cls(arrays, params)
