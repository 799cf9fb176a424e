"""Training a learned scorer: embed the prompts, choose hyper-parameters by k-fold
cross-validation on the training prompts, fit, measure, and package the artifact.

    scorer = train_scorer("knn", outcomes, train_idx, encoder=load_encoder("minilm-l6-v2"))
    scorer.save("artifacts/knn")

Prompts of `data` outside `train_idx` are never seen by the fit or the search;
if there are any, the manifest carries the predictor's metrics on them.
Needs the `train` extra (scikit-learn for `mlp`, torch for `mf`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from modelyard.embeddings import Encoder, encode_batched
from modelyard.learned.artifact import DataInfo, EncoderInfo, Manifest
from modelyard.learned.defaults import SEARCH_FOLDS
from modelyard.learned.metrics import prediction_report
from modelyard.learned.outcomes import OutcomeSet
from modelyard.learned.predictors import Floats, Predictor, Vectors, column_means
from modelyard.learned.scorer import LearnedScorer, guess_encoder_name
from modelyard.learned.search import (
    Progress,
    Trial,
    best,
    candidates,
    cross_validate,
)

Kind = Literal["knn", "mlp", "mf"]
KINDS: tuple[Kind, ...] = ("knn", "mlp", "mf")
_FITTERS = {
    "knn": ("modelyard.learned.knn", "fit_knn"),
    "mlp": ("modelyard.learned.mlp_fit", "fit_mlp"),
    "mf": ("modelyard.learned.mf_fit", "fit_mf"),
}


def fitter(kind: str) -> Callable[..., Predictor]:
    """The fit function of `kind`, imported only when asked for (sklearn / torch)."""
    if kind not in _FITTERS:
        raise ValueError(f"unknown predictor kind {kind!r} (known: {', '.join(KINDS)})")
    module, name = _FITTERS[kind]
    fit: Callable[..., Predictor] = getattr(importlib.import_module(module), name)
    return fit


def embed(encoder: Encoder, texts: Sequence[str], progress: Progress | None = None) -> Vectors:
    """Encode in batches, reporting progress as ("embedding", done, total)."""
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("embedding", done, len(texts))

    return encode_batched(encoder, texts, advance=advance)


def train_scorer(
    kind: Kind,
    data: OutcomeSet,
    train_idx: Sequence[int] | npt.NDArray[np.integer[Any]] | None = None,
    *,
    encoder: Encoder,
    seed: int = 0,
    folds: int = SEARCH_FOLDS,
    encoder_name: str | None = None,
    progress: Progress | None = None,
    **params: Any,
) -> LearnedScorer:
    """Train a `kind` predictor on the prompts `train_idx` of `data` (all when None).

    `params` narrow the search grid (a list = values to try, a value = fixed), e.g.
    `k=[10, 20]` or `head="logistic"`. With one candidate and `folds < 2` the search
    is skipped. `encoder_name` is the `load_encoder` name recorded for serving
    (told from the encoder id when omitted)."""
    fit = fitter(kind)
    rows = np.arange(len(data)) if train_idx is None else np.asarray(train_idx, dtype=np.int64)
    if len(rows) == 0:
        raise ValueError("no training prompts")
    held = np.setdiff1d(np.arange(len(data)), rows)
    train = data.subset(rows)
    x = embed(encoder, train.texts, progress)
    trials = candidates(kind, params)
    search: list[Trial] = []
    baseline_cv: float | None = None
    if folds >= 2 and len(train) >= folds:
        search, baseline_cv = cross_validate(
            fit, x, train.quality, trials, folds=folds, seed=seed, progress=progress
        )
        chosen = best(search).params
    elif len(trials) == 1:
        chosen = trials[0]
    else:
        raise ValueError(
            f"{len(trials)} parameter sets to choose from but no cross-validation folds"
        )
    predictor = fit(x, train.quality, seed=seed, **chosen)
    if progress:
        progress("fit", 1, 1)
    metrics: dict[str, Any] = {"train_prompts": len(train), "cv_baseline_mse": baseline_cv}
    if search:
        metrics["cv_mse"] = best(search).cv_mse
    if len(held):
        metrics["holdout"] = holdout_report(predictor, encoder, data.subset(held), train.quality)
    manifest = Manifest(
        kind=kind,
        encoder=EncoderInfo(
            id=encoder.id, name=encoder_name or guess_encoder_name(encoder.id), dim=encoder.dim
        ),
        models=list(data.models),
        data=DataInfo(
            name=data.name,
            sha256=train.content_hash(),
            prompts=len(train),
            sources=sorted(set(train.sources)),
        ),
        seed=seed,
        params=predictor.params(),
        search=[{"params": t.params, "cv_mse": t.cv_mse} for t in search],
        metrics=metrics,
        output_tokens=median_output_tokens(train),
    )
    return LearnedScorer(predictor, encoder, manifest)


def holdout_report(
    predictor: Predictor, encoder: Encoder, held: OutcomeSet, train_quality: Floats
) -> dict[str, Any]:
    """Prediction metrics on prompts the predictor never saw, with the baseline."""
    pred = predictor.predict(embed(encoder, held.texts))
    return prediction_report(pred, held.quality, held.cost_usd, column_means(train_quality))


def median_output_tokens(data: OutcomeSet) -> dict[str, float]:
    """Each model's median answer length, where the data records it."""
    out: dict[str, float] = {}
    for j, model in enumerate(data.models):
        known = data.output_tokens[:, j]
        known = known[known >= 0]
        if len(known):
            out[model] = float(np.median(known))
    return out
