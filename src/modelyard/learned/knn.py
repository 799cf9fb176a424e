"""k-nearest-neighbours quality predictor on prompt embeddings.

A new prompt's predicted quality for model m is the similarity-weighted mean of
m's quality on the k most similar training prompts (cosine), shrunk toward m's
overall mean by `prior_weight` pseudo-neighbours, so a prompt far from everything
seen gets the model's average rather than the noise of a few distant neighbours.
Weights are exp((cos − 1)/temperature): 1 for an identical prompt, smaller with
distance; a large temperature is a plain mean of the k neighbours.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from modelyard.learned.predictors import Arrays, Floats, Vectors, column_means, require

# Rows scored per block when many prompts are predicted at once (training-time
# cross-validation), so the similarity matrix stays within a few hundred MB.
BLOCK = 1024


class KnnPredictor:
    kind: ClassVar[str] = "knn"

    def __init__(
        self,
        embeddings: Vectors,
        quality: Floats,
        *,
        k: int = 20,
        temperature: float = 0.1,
        prior_weight: float = 1.0,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if temperature <= 0 or prior_weight < 0:
            raise ValueError("temperature must be > 0 and prior_weight >= 0")
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.quality = np.asarray(quality, dtype=np.float64)
        self.k = min(k, len(self.embeddings))
        self.temperature = temperature
        self.prior_weight = prior_weight
        self.means = column_means(self.quality)
        # NaN-free copies so the weighted sums are plain matrix products.
        self._seen = (~np.isnan(self.quality)).astype(np.float64)
        self._filled = np.where(self._seen > 0, self.quality, 0.0)

    def predict(self, x: Vectors) -> Floats:
        x = np.asarray(x, dtype=np.float32)
        if len(x) <= BLOCK:
            return self._predict_block(x)
        return np.concatenate(
            [self._predict_block(x[i : i + BLOCK]) for i in range(0, len(x), BLOCK)]
        )

    def _predict_block(self, x: Vectors) -> Floats:
        sims = x @ self.embeddings.T  # (b, n): cosine, both sides are unit vectors
        k = self.k
        if k < sims.shape[1]:
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(sims.shape[1]), (len(x), sims.shape[1]))
        near = np.take_along_axis(sims, top, axis=1).astype(np.float64)
        weights = np.exp((near - 1.0) / self.temperature)  # (b, k)
        num = np.einsum("bk,bkm->bm", weights, self._filled[top])
        den = np.einsum("bk,bkm->bm", weights, self._seen[top])
        alpha = self.prior_weight
        out: Floats = np.divide(
            num + alpha * self.means,
            den + alpha,
            out=np.broadcast_to(self.means, num.shape).copy(),
            where=(den + alpha) > 0,
        )
        return out

    def arrays(self) -> Arrays:
        return {"embeddings": self.embeddings, "quality": self.quality}

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "temperature": self.temperature, "prior_weight": self.prior_weight}

    @classmethod
    def from_state(cls, arrays: Arrays, params: dict[str, Any]) -> KnnPredictor:
        embeddings, quality = require(arrays, "embeddings", "quality")
        return cls(embeddings, quality, **params)


def fit_knn(x: Vectors, quality: Floats, *, seed: int = 0, **params: Any) -> KnnPredictor:
    """kNN 'fitting' is remembering the training prompts; `seed` is unused (exact)."""
    del seed
    return KnnPredictor(x, quality, **params)
