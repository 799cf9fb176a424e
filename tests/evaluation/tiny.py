"""Small hand-made outcome sets for the evaluation tests."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np

from modelyard.learned.outcomes import OutcomePrompt, OutcomeSet

MODELS = ("big", "mid", "small")
# $ per million tokens (input, output): big is 10x mid, mid 10x small.
PRICES = {"big": (10.0, 30.0), "mid": (1.0, 3.0), "small": (0.1, 0.3)}


def tiny_outcomes(n: int = 6, *, missing: tuple[int, str] | None = None) -> OutcomeSet:
    """n prompts x 3 models. big is always right; mid on even prompts; small on every
    third prompt. Costs are tokens x PRICES, recorded exactly as Decimals."""
    prompts = tuple(
        OutcomePrompt(str(i), ({"role": "user", "content": f"question number {i}"},), "tiny")
        for i in range(n)
    )
    quality = np.zeros((n, 3))
    quality[:, 0] = 1.0
    quality[::2, 1] = 1.0
    quality[::3, 2] = 1.0
    tin = np.full((n, 3), 10, dtype=np.int64)
    tout = np.array([[100 + i, 50 + i, 20 + i] for i in range(n)], dtype=np.int64)
    cost = np.zeros((n, 3))
    exact: dict[tuple[str, str], Decimal] = {}
    for i in range(n):
        for j, m in enumerate(MODELS):
            p_in, p_out = PRICES[m]
            value = Decimal(str(p_in)) * int(tin[i, j]) + Decimal(str(p_out)) * int(tout[i, j])
            exact[(str(i), m)] = (value / Decimal(1_000_000)).quantize(Decimal("1e-9"))
            cost[i, j] = float(exact[(str(i), m)])
    if missing is not None:
        row, model = missing
        quality[row, MODELS.index(model)] = np.nan
    return OutcomeSet(
        name="tiny",
        prompts=prompts,
        models=MODELS,
        quality=quality,
        cost_usd=cost,
        input_tokens=tin,
        output_tokens=tout,
        responses={(str(i), m): f"{m} says {i}" for i in range(n) for m in MODELS},
        exact_cost=exact,
    )


TOPICS = {
    "math": ["integral", "equation", "prime", "matrix", "derivative", "algebra"],
    "poetry": ["sonnet", "rhyme", "stanza", "verse", "haiku", "metaphor"],
}
# model -> (quality on math, quality on poetry, $ per call)
SPECIALISTS = {
    "mathbot": (0.95, 0.1, "0.0010"),
    "poet": (0.1, 0.95, "0.0010"),
    "frontier": (0.9, 0.9, "0.0200"),
    "tiny": (0.2, 0.2, "0.0001"),
}


def write_topic_jsonl(path: Path, per_topic: int = 24) -> Path:
    """Prompts about two topics; two cheap specialists (each better than the generalist
    on its topic), a dear generalist and a weak model. A router that reads the topic
    beats the generalist at a twentieth of its cost."""
    lines = []
    for t, (topic, words) in enumerate(TOPICS.items()):
        for i in range(per_topic):
            pid = t * 1000 + i
            prompt = f"please help with this {topic} task: {words[i % 6]} {words[(i + 1) % 6]} {i}"
            for model, (q_math, q_poetry, cost) in SPECIALISTS.items():
                quality = q_math if topic == "math" else q_poetry
                lines.append(
                    json.dumps(
                        {
                            "prompt_id": pid,
                            "prompt": prompt,
                            "model": model,
                            "source": topic,
                            "quality": quality,
                            "cost_usd": cost,
                            "input_tokens": 20,
                            "output_tokens": 80,
                            "response": f"{model} on {pid}",
                        }
                    )
                )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
