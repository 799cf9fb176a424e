"""Fitting `MfPredictor` with torch (training only).

Loss: binary cross-entropy between σ(score) and the observed quality (a soft
label), averaged over the observed (prompt, model) cells — regression on quality
through a logistic link, so predictions stay in [0, 1] — plus an L2 penalty on W
and v (not on w or the biases). Full-batch Adam; every random draw comes from one
seeded generator, so a fit is reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from modelyard.learned.mf import MfPredictor
from modelyard.learned.predictors import Floats, Vectors, column_means


def fit_mf(
    x: Vectors,
    quality: Floats,
    *,
    seed: int = 0,
    latent: int = 32,
    l2: float = 1e-3,
    epochs: int = 100,
    lr: float = 1e-2,
) -> MfPredictor:
    # The matrices are small: one thread is faster than several fighting for 2 cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            return _fit(x, quality, seed=seed, latent=latent, l2=l2, epochs=epochs, lr=lr)
    finally:
        torch.set_num_threads(threads)


def _fit(
    x: Vectors,
    quality: Floats,
    *,
    seed: int = 0,
    latent: int,
    l2: float,
    epochs: int,
    lr: float,
) -> MfPredictor:
    gen = torch.Generator().manual_seed(seed)
    dim = x.shape[1]
    models = quality.shape[1]
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    seen = torch.from_numpy(~np.isnan(quality)).float()
    target = torch.from_numpy(np.nan_to_num(quality, nan=0.0)).float()
    means = np.clip(column_means(quality), 1e-3, 1 - 1e-3)
    projection = torch.nn.Parameter(torch.randn(latent, dim, generator=gen) / dim**0.5)
    vectors = torch.nn.Parameter(torch.randn(models, latent, generator=gen) / latent**0.5)
    w = torch.nn.Parameter(torch.ones(latent))
    bias = torch.nn.Parameter(torch.from_numpy(np.log(means / (1 - means))).float())
    opt = torch.optim.Adam([projection, vectors, w, bias], lr=lr)
    cells = seen.sum().clamp(min=1.0)
    for _ in range(epochs):
        opt.zero_grad()
        logits = (xt @ projection.T) @ (vectors * w).T + bias
        fit = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, weight=seen, reduction="sum"
        )
        loss = fit / cells + l2 * (projection.square().sum() + vectors.square().sum())
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    weights: dict[str, Any] = {
        "projection": projection.detach().numpy(),
        "model_vectors": vectors.detach().numpy(),
        "w": w.detach().numpy(),
        "bias": bias.detach().numpy().astype(np.float64),
    }
    params = {"latent": latent, "l2": l2, "epochs": epochs, "lr": lr}
    return MfPredictor(weights, params)
