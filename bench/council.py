"""Council benchmark (issue 11): vote councils replayed through the same Engine.

    python bench/council.py [--datasets gsm8k,mmlu-pro] [--max-rows 1500] [--seed 0]

For each dataset in `../shared/data` the prompts are split in two halves (seeded).
On the SELECTION half, members are chosen: the best single model (accuracy), and
the cheap council: the three-member vote council, from the 12 most accurate models
each cheaper than the best model, with the highest emulated accuracy whose summed
cost stays below the best single model's (emulated from the dataset's parsed
answers, `pred`, exactly as the Engine votes). The auto-accept threshold on the
agreement score for each accuracy target (95/97/99%) is chosen there too.

On the REPORT half, every policy is sent prompt by prompt through `Engine.complete`
(the replay harness: ReplayProvider answers each member with its recorded response
and cost, `parsed_answer` = `pred`), and read back from the ledger: the council
(`members: [...]`, `adjudicator: vote`), the router-chosen council (`members:
{count: 3, diverse_families: true}`, the router's priors = selection-half accuracy),
the fixed top-3 (the three most accurate models of the selection half), the best
single model, and each council's best single member. Reported: accuracy, cost per
1k requests, the agreement zone's accuracy and share and the disputed zone's, and
the coverage (auto-accepted share) at each accuracy target with the accuracy it
actually reached on the report half. Only `vote` councils replay offline: an
adjudicator model's answer is not in the data (its wiring is tested with fake
upstreams, tests/council).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt

from modelyard.evaluation.harness import ReplayHarness
from modelyard.learned.outcomes import OutcomeSet, load_outcomes
from modelyard.verifiers.extract import normalise_parsed

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
DATASETS = {"gsm8k": "gsm8k-routing", "mmlu-pro": "mmlu-pro-routing"}
TARGETS = (0.95, 0.97, 0.99)
PER_1K = 1000.0
POOL = 12


def family(model: str) -> str:
    """A model's maker from its name (claude, gpt, llama, gemini, qwen, ...)."""
    found = re.match(r"[a-z]+", model.lower())
    return found.group(0) if found else model


@dataclass
class Votes:
    """Every model's parsed answer as an integer code per row (-1: none)."""

    codes: npt.NDArray[np.int64]
    quality: npt.NDArray[np.float64]
    cost: npt.NDArray[np.float64]

    @classmethod
    def of(cls, data: OutcomeSet) -> Votes:
        table: dict[str, int] = {}
        codes = np.full((len(data), len(data.models)), -1, dtype=np.int64)
        for i, prompt in enumerate(data.prompts):
            for j, model in enumerate(data.models):
                pred = data.preds.get((prompt.id, model))
                if pred is not None:
                    codes[i, j] = table.setdefault(normalise_parsed(pred), len(table))
        return cls(codes, np.nan_to_num(data.quality), np.nan_to_num(data.cost_usd))


def emulate(v: Votes, rows: npt.NDArray[np.int64], members: tuple[int, ...]) -> dict[str, Any]:
    """A vote council on `rows`: the served member per row (the earliest member with
    the most agreeing answers, as `council.agreement` votes), agreement score, cost."""
    codes = v.codes[np.ix_(rows, list(members))]
    n = len(members)
    support = np.zeros(codes.shape, dtype=np.int64)
    for a in range(n):
        for b in range(n):
            support[:, a] += (codes[:, a] == codes[:, b]) & (codes[:, a] >= 0)
    # Ties go to the earliest member: argmax returns the first maximum.
    winner = support.argmax(axis=1)
    served = np.array(members)[winner]
    score = support.max(axis=1) / n
    quality = v.quality[rows, served]
    cost = v.cost[np.ix_(rows, list(members))].sum(axis=1)
    return {"served": served, "score": score, "quality": quality, "cost": cost}


def choose_council(v: Votes, rows: npt.NDArray[np.int64], best: int, size: int) -> tuple[int, ...]:
    """The most accurate `size`-member council cheaper than `best`, from the most
    accurate models each cheaper than `best` (`POOL` of them for three members, ten
    for five; selection half only)."""
    acc = v.quality[rows].mean(axis=0)
    cost = v.cost[rows].mean(axis=0)
    pool = POOL if size <= 3 else 10
    # Members that can fit `size` together under the best model's cost.
    cap = cost[best] / (size - 1)
    cheaper = [j for j in np.argsort(-acc) if cost[j] < cap and j != best][:pool]
    found: tuple[float, tuple[int, ...]] | None = None
    for trio in itertools.combinations(cheaper, size):
        em = emulate(v, rows, trio)
        if em["cost"].mean() < cost[best] and (found is None or em["quality"].mean() > found[0]):
            found = (float(em["quality"].mean()), trio)
    if found is None:
        raise ValueError(f"no {size}-member council costs less than the best single model")
    # Order members by accuracy: ties in the vote go to the most accurate.
    return tuple(sorted(found[1], key=lambda j: -acc[j]))


def thresholds(score: npt.NDArray[np.float64], quality: npt.NDArray[np.float64]) -> dict[str, Any]:
    """Per target: the lowest agreement score whose auto-accepted rows reach it."""
    out: dict[str, Any] = {}
    for target in TARGETS:
        chosen = None
        for level in sorted(set(np.round(score, 4)), reverse=True):
            kept = score >= level - 1e-3
            if quality[kept].mean() >= target:
                chosen = float(level)
        out[f"{target:.2f}"] = chosen
    return out


async def replay(
    data: OutcomeSet, policies: dict[str, Any], priors: dict[str, float], rows: list[int]
) -> dict[str, Any]:
    """Each policy through Engine.complete on `rows`; the councils' zones recorded."""
    harness = ReplayHarness(data, policies, prior_quality=priors)
    # The replay stack names no families; councils with diverse members need them.
    cards = harness.engine.catalog.cards
    for model_id, card in list(cards.items()):
        cards[model_id] = _with_family(card, family(model_id))
    zones: dict[str, list[float]] = {}
    async with harness:
        for name in policies:
            scores: list[float] = []
            for row in rows:
                request = harness.request(row, name)
                rid = harness.next_request_id(row, name)
                _, out = await harness.engine.complete(request, request_id=rid)
                scores.append(out.council.agreement if out.council else 1.0)
            zones[name] = scores
        results = await harness.results()
    return {"runs": results, "scores": zones}


def _with_family(card: Any, name: str) -> Any:
    import dataclasses

    return dataclasses.replace(card, family=name)


def summarise(run: Any, scores: list[float] | None, picks: dict[str, Any] | None) -> dict[str, Any]:
    quality = run.quality
    out: dict[str, Any] = {
        "accuracy": round(float(quality.mean()), 4),
        "cost_per_1k": round(float(run.cost.mean()) * PER_1K, 4),
        "failed": run.failed,
    }
    if scores is None:
        return out
    score = np.array(scores)
    agreed = np.round(score, 2) >= 0.67
    out["agreed"] = _zone(quality, agreed)
    out["disputed"] = _zone(quality, ~agreed)
    out["unanimous"] = _zone(quality, score >= 1 - 1e-3)
    out["coverage"] = {}
    for target, level in (picks or {}).items():
        # Levels are rounded to 4 decimals: 0.6667 must keep a score of 2/3.
        kept = score >= (level if level is not None else 2.0) - 1e-3
        out["coverage"][target] = {"threshold": level, **_zone(quality, kept)}
    return out


def _zone(quality: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
    share = float(mask.mean())
    acc = float(quality[mask].mean()) if mask.any() else None
    return {"share": round(share, 4), "accuracy": None if acc is None else round(acc, 4)}


def study(name: str, args: argparse.Namespace) -> dict[str, Any]:
    data = load_outcomes(SHARED / DATASETS[name])
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(data))
    half = len(order) // 2
    select, report = np.sort(order[:half]), np.sort(order[half:])
    report = report[: args.max_rows]
    v = Votes.of(data)
    acc = v.quality[select].mean(axis=0)
    best = int(np.argmax(acc))
    council = choose_council(v, select, best, 3)
    council5 = choose_council(v, select, best, 5)
    top3 = tuple(int(j) for j in np.argsort(-acc)[:3])
    models = data.models
    priors = {m: float(acc[j]) for j, m in enumerate(models)}
    router = router_members(data, priors)
    seats = {
        "council": council,
        "council5": council5,
        "router_council": router,
        "top3_council": top3,
    }
    # Each council's auto-accept thresholds, from its own selection-half votes.
    picks = {
        name: thresholds(em["score"], em["quality"])
        for name, em in ((n, emulate(v, select, m)) for n, m in seats.items())
    }
    policies: dict[str, Any] = {
        "council": _council([models[j] for j in council]),
        "council5": _council([models[j] for j in council5]),
        "router_council": {
            "type": "council",
            "members": {"count": 3, "diverse_families": True},
            "adjudicator": "vote",
        },
        "top3_council": _council([models[j] for j in top3]),
        "best_single": {"type": "fixed", "model": models[best]},
        **{f"member_{i}": {"type": "fixed", "model": models[j]} for i, j in enumerate(council)},
    }
    t0 = time.perf_counter()
    got = anyio.run(replay, data, policies, priors, [int(r) for r in report])
    runs, scores = got["runs"], got["scores"]
    members = {f"member_{i}": models[j] for i, j in enumerate(council)}
    best_member = max(members, key=lambda k: runs[k].quality.mean())
    em_report = emulate(v, report, council)
    engine_served = runs["council"].model
    return {
        "dataset": name,
        "prompts": len(data),
        "selection_rows": len(select),
        "report_rows": len(report),
        "seconds": round(time.perf_counter() - t0, 1),
        "best_single_model": models[best],
        "members": {name: [models[j] for j in m] for name, m in seats.items()},
        "thresholds_from_selection": picks,
        "engine_matches_emulation": float((engine_served == em_report["served"]).mean()),
        "results": {
            **{name: summarise(runs[name], scores[name], picks[name]) for name in seats},
            "best_single": summarise(runs["best_single"], None, None),
            "best_member": {
                "model": members[best_member],
                **summarise(runs[best_member], None, None),
            },
        },
    }


def router_members(data: OutcomeSet, priors: dict[str, float]) -> tuple[int, ...]:
    """The members the router seats for `{count: 3, diverse_families: true}` (the
    priors are per model, not per prompt, so every prompt gets the same members)."""
    seated: list[int] = []
    families: set[str] = set()
    for model in sorted(priors, key=lambda m: -priors[m]):
        if family(model) not in families and len(seated) < 3:
            seated.append(data.models.index(model))
            families.add(family(model))
    return tuple(seated)


def _council(members: list[str]) -> dict[str, Any]:
    return {"type": "council", "members": members, "adjudicator": "vote"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="gsm8k,mmlu-pro")
    parser.add_argument("--max-rows", type=int, default=1500, help="report-half rows replayed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "council.json"))
    args = parser.parse_args()
    results = [study(name, args) for name in args.datasets.split(",")]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
