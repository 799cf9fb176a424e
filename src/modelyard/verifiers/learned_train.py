"""Training the `learned` verifier from outcome data that has responses.

Each (prompt, model) cell with a recorded response and quality is one example:
features of (prompt, response) → good (quality ≥ `good_quality`). A logistic
regression (scikit-learn, from the `train` extra) is fitted on the training prompts;
the threshold defaults to the one that maximises accuracy on them. `train_command`
is the entry the CLI wires in as `modelyard router train --kind verifier`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelyard.learned.outcomes import OutcomeSet
from modelyard.verifiers.learned import DEFAULT_TAIL_WORDS, LogisticModel, features, tail


def examples(
    data: OutcomeSet, rows: Sequence[int] | None = None, *, good_quality: float = 0.5
) -> tuple[list[str], list[str], list[int]]:
    """(prompt texts, responses, labels) of every cell with a response and a quality."""
    import numpy as np

    prompts: list[str] = []
    answers: list[str] = []
    labels: list[int] = []
    for row in range(len(data)) if rows is None else rows:
        prompt = data.prompts[row]
        for col, model in enumerate(data.models):
            quality = data.quality[row, col]
            response = data.responses.get((prompt.id, model))
            if response is None or np.isnan(quality):
                continue
            prompts.append(prompt.text)
            answers.append(response)
            labels.append(int(quality >= good_quality))
    return prompts, answers, labels


def train_verifier(
    prompts: Sequence[str],
    answers: Sequence[str],
    labels: Sequence[int],
    encoder: Any,
    *,
    threshold: float | None = None,
    c: float = 1.0,
    seed: int = 0,
    tail_words: int = DEFAULT_TAIL_WORDS,
) -> LogisticModel:
    """Fit the logistic quality predictor on (prompt, answer, good?) examples."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    if len(set(labels)) < 2:
        raise ValueError("training a verifier needs both good and bad answers")
    unique = sorted(set(prompts))
    index = {p: i for i, p in enumerate(unique)}
    pvecs = encoder.encode([tail(p, tail_words) for p in unique])
    avecs = encoder.encode([tail(a, tail_words) for a in answers])
    x = features(pvecs[[index[p] for p in prompts]], avecs, list(answers))
    y = np.asarray(labels)
    fitted = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
    model = LogisticModel(
        weights=fitted.coef_[0].astype(np.float64),
        bias=float(fitted.intercept_[0]),
        encoder=encoder.id,
        threshold=0.5,
        summary={},
        tail_words=tail_words,
    )
    probs = model.predict(x)
    chosen = threshold if threshold is not None else _best_threshold(probs, y)
    accuracy = float(np.mean((probs >= chosen) == (y == 1)))
    summary = {
        "examples": len(y),
        "good_share": round(float(y.mean()), 4),
        "train_accuracy": round(accuracy, 4),
        "c": c,
    }
    return LogisticModel(model.weights, model.bias, encoder.id, float(chosen), summary, tail_words)


def _best_threshold(probs: Any, y: Any) -> float:
    import numpy as np

    grid = np.linspace(0.05, 0.95, 19)
    accuracy = [float(np.mean((probs >= t) == (y == 1))) for t in grid]
    return round(float(grid[int(np.argmax(accuracy))]), 2)


def train_command(
    data: Path,
    out: Path,
    *,
    encoder: str = "minilm-l6-v2",
    fmt: str = "auto",
    good_quality: float = 0.5,
    threshold: float | None = None,
    tail_words: int = DEFAULT_TAIL_WORDS,
) -> LogisticModel:
    """Load outcome data, train a verifier on all of it and save the artifact to `out`."""
    from modelyard.embeddings import load_encoder
    from modelyard.learned.outcomes import load_outcomes

    dataset = load_outcomes(data, fmt)  # type: ignore[arg-type]
    prompts, answers, labels = examples(dataset, good_quality=good_quality)
    if not answers:
        raise ValueError(f"{dataset.name}: no responses to train a verifier on")
    model = train_verifier(
        prompts, answers, labels, load_encoder(encoder), threshold=threshold, tail_words=tail_words
    )
    model.save(out)
    return model
