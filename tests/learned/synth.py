"""A synthetic outcome set whose quality really depends on the prompt's topic.

Three topics with their own vocabulary; the models are named after the test
stack's cards (tests/stack.py): `small` is good at code only, `vision-mid` at
poetry only, `frontier` is good at everything. A predictor that learns from the
prompt text must beat one that predicts each model's average.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from modelyard.learned.outcomes import OutcomePrompt, OutcomeSet

TOPICS = {
    "code": "python function bug compile loop variable class error stack trace",
    "poetry": "poem rhyme verse sonnet stanza metaphor moon love haiku",
    "math": "integral equation prove theorem algebra matrix sum derivative",
}
FILLER = ["please", "could", "you", "help", "me", "with", "this", "today", "write", "the"]
MODELS = ("small", "vision-mid", "frontier")
# Quality of each model on each topic.
SKILL = {
    "code": (0.9, 0.2, 0.75),
    "poetry": (0.2, 0.9, 0.75),
    "math": (0.3, 0.3, 0.75),
}
COST = (0.0001, 0.001, 0.01)


def prompt_text(topic: str, rng: np.random.Generator) -> str:
    words = list(rng.choice(TOPICS[topic].split(), 5)) + list(rng.choice(FILLER, 4))
    rng.shuffle(words)
    return " ".join(str(w) for w in words)


def topic_outcomes(n: int = 150, seed: int = 0, noise: float = 0.05) -> OutcomeSet:
    rng = np.random.default_rng(seed)
    topics = [list(TOPICS)[i % len(TOPICS)] for i in range(n)]
    prompts = tuple(
        OutcomePrompt(f"p{i}", ({"role": "user", "content": prompt_text(t, rng)},), t)
        for i, t in enumerate(topics)
    )
    quality = np.array([SKILL[t] for t in topics]) + rng.uniform(-noise, noise, (n, 3))
    shape = (n, len(MODELS))
    return OutcomeSet(
        name="topics",
        prompts=prompts,
        models=MODELS,
        quality=np.clip(quality, 0.0, 1.0),
        cost_usd=np.tile(COST, (n, 1)),
        input_tokens=np.full(shape, 50, dtype=np.int64),
        output_tokens=np.tile(np.array([100, 200, 400], dtype=np.int64), (n, 1)),
    )


def write_jsonl(data: OutcomeSet, path: Path) -> Path:
    """`data` in the plain JSONL layout (one line per prompt × model)."""
    lines = []
    for i, prompt in enumerate(data.prompts):
        for j, model in enumerate(data.models):
            row = {
                "prompt_id": prompt.id,
                "prompt": list(prompt.messages),
                "model": model,
                "quality": float(data.quality[i, j]),
                "cost_usd": float(data.cost_usd[i, j]),
                "output_tokens": int(data.output_tokens[i, j]),
            }
            lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
