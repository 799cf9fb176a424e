"""Learned routing: outcome data, quality predictors trained on it, and their artifacts.

    from modelyard.learned import load_outcomes, train_scorer, load_scorer

Serving (loading an artifact and scoring a request) needs NumPy and an encoder only;
training needs the `train` extra (scikit-learn, torch). Names are imported on first
use, so `import modelyard.learned` (the CLI does) costs nothing without the extras.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.learned.outcomes import OutcomePrompt, OutcomeSet, load_outcomes
    from modelyard.learned.scorer import LearnedScorer, load_scorer
    from modelyard.learned.train import train_scorer

_EXPORTS = {
    "OutcomePrompt": "modelyard.learned.outcomes",
    "OutcomeSet": "modelyard.learned.outcomes",
    "load_outcomes": "modelyard.learned.outcomes",
    "LearnedScorer": "modelyard.learned.scorer",
    "load_scorer": "modelyard.learned.scorer",
    "train_scorer": "modelyard.learned.train",
}
__all__ = [
    "LearnedScorer",
    "OutcomePrompt",
    "OutcomeSet",
    "load_outcomes",
    "load_scorer",
    "train_scorer",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'modelyard.learned' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
