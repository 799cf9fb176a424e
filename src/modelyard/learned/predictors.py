"""The predictor protocol: prompt embeddings in, predicted quality per model out.

A predictor is pure NumPy at inference time, so the server can load one without
scikit-learn or torch. Its whole state is `arrays()` (saved to `arrays.npz`) plus
`params()` (saved in the manifest); `from_state` rebuilds it. Fitting lives in
`fit_*` functions that the training code imports lazily (`modelyard.learned.train`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Vectors = npt.NDArray[np.float32]
Arrays = dict[str, npt.NDArray[Any]]


class Predictor(Protocol):
    """Predicts, for each embedded prompt, the quality (0..1) each model would reach."""

    kind: ClassVar[str]

    def predict(self, x: Vectors) -> Floats:
        """x: (n, dim) L2-normalised embeddings → (n, models) predicted quality."""
        ...

    def arrays(self) -> Arrays: ...

    def params(self) -> dict[str, Any]: ...


def sigmoid(z: Floats) -> Floats:
    """Numerically stable logistic function."""
    out: Floats = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def column_means(quality: Floats) -> Floats:
    """Per-model mean observed quality (0.5 for a model with no observation)."""
    seen = ~np.isnan(quality)
    counts = seen.sum(axis=0)
    sums = np.where(seen, quality, 0.0).sum(axis=0)
    means: Floats = np.divide(sums, counts, out=np.full(quality.shape[1], 0.5), where=counts > 0)
    return means


def require(arrays: Arrays, *names: str) -> list[npt.NDArray[Any]]:
    """The named arrays, or a clear error naming the missing one."""
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"artifact arrays are missing {', '.join(missing)}")
    return [arrays[n] for n in names]
