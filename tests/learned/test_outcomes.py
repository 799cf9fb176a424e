"""Outcome loaders: the JSONL layout, RouterBench's wide table, bad rows, and the slices."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from modelyard.learned.loaders import outcomes_from_routerbench  # noqa: E402
from modelyard.learned.outcomes import OutcomeSet, load_outcomes  # noqa: E402
from tests.data_paths import SHARED_DATA, needs_data  # noqa: E402

HAS_PANDAS = importlib.util.find_spec("pandas") is not None

CONVERSATION = [
    {"role": "user", "content": "Write a haiku about rain."},
    {"role": "assistant", "content": "Soft rain on tin roofs"},
    {"role": "user", "content": "Now translate it into French."},
]


def rows() -> list[dict[str, Any]]:
    return [
        {"prompt_id": 1, "prompt": "hi", "model": "a", "quality": 0.5, "cost_usd": 0.0012345},
        {"prompt_id": 1, "prompt": "hi", "model": "b", "quality": 1, "cost_usd": "0.5"},
        {
            "prompt_id": "c2",
            "prompt": CONVERSATION,
            "model": "b",
            "quality": 0.25,
            "input_tokens": 1000,
            "output_tokens": 2000,
            "response": "Pluie douce",
            "source": "chat",
        },
    ]


def write(path: Path, items: list[Any]) -> Path:
    lines = [x if isinstance(x, str) else json.dumps(x) for x in items]
    data = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def test_jsonl_layout_dense_arrays_exact_cost_and_priced_tokens(tmp_path: Path) -> None:
    data = load_outcomes(write(tmp_path / "mine.jsonl.gz", rows()), prices={"b": ("1.5", "10")})
    assert data.name == "mine"
    assert data.models == ("a", "b")
    assert [p.id for p in data.prompts] == ["1", "c2"]
    assert data.quality[0].tolist() == [0.5, 1.0]
    assert np.isnan(data.quality[1, 0])  # model a never answered c2
    # Money is exact: the recorded text, and tokens × price for the row without cost.
    assert data.cost_decimal(0, "a") == Decimal("0.001234500")
    assert data.cost_decimal(1, "b") == Decimal("0.0215")  # 1000×1.5/1e6 + 2000×10/1e6
    assert data.input_tokens[1, 1] == 1000
    assert data.input_tokens[0, 0] == -1
    assert data.responses[("c2", "b")] == "Pluie douce"
    assert data.prompts[0].source == "mine"
    assert data.prompts[1].source == "chat"


def test_multi_turn_prompt_is_embedded_as_the_whole_conversation(tmp_path: Path) -> None:
    data = load_outcomes(write(tmp_path / "x.jsonl", rows()), prices={"b": (1, 1)})
    text = data.prompts[data.index("c2")].text
    assert "haiku" in text
    assert "French" in text
    assert data.prompts[data.index("c2")].messages[2]["role"] == "user"


def test_slices_keep_rows_columns_and_costs_together(tmp_path: Path) -> None:
    data = load_outcomes(write(tmp_path / "x.jsonl", rows()), prices={"b": (1, 1)})
    only_c2 = data.subset([1])
    assert [p.id for p in only_c2.prompts] == ["c2"]
    assert only_c2.cost_decimal(0, "b") == data.cost_decimal(1, "b")
    assert ("1", "a") not in only_c2.exact_cost
    only_b = data.without_models(["a"])
    assert only_b.models == ("b",)
    assert only_b.quality[:, 0].tolist() == data.quality[:, 1].tolist()
    with pytest.raises(KeyError, match="unknown model"):
        data.without_models(["zzz"])
    with pytest.raises(KeyError, match="no prompt"):
        data.index("nope")
    assert data.content_hash() != only_b.content_hash()
    assert data.content_hash() == data.subset([0, 1]).content_hash()


DROP = object()
GOOD = {"prompt_id": 9, "prompt": "x", "model": "a", "quality": 0.1, "cost_usd": 1}


def bad(**changes: Any) -> dict[str, Any]:
    row = {**GOOD, **changes}
    return {k: v for k, v in row.items() if v is not DROP}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        (bad(prompt_id=DROP), "line 2: missing field 'prompt_id'"),
        (bad(prompt_id=[1]), "line 2: field 'prompt_id'"),
        (bad(quality=1.5), "line 2: field 'quality'"),
        (bad(quality="good"), "line 2: field 'quality'"),
        (bad(cost_usd=-1), "line 2: field 'cost_usd'"),
        (bad(cost_usd=DROP), "line 2: needs 'cost_usd'"),
        (
            bad(cost_usd=DROP, model="zz", input_tokens=1, output_tokens=1),
            "line 2: no 'cost_usd' and no price for model 'zz'",
        ),
        (bad(input_tokens=-3), "line 2: field 'input_tokens'"),
        (bad(prompt=[{"role": "robot", "content": "x"}]), r"line 2: field 'prompt'\[0\].role"),
        (bad(prompt=""), "line 2: field 'prompt' is empty"),
        (bad(prompt_id=1, prompt="hi"), "line 2: duplicate outcome"),
        (bad(pred=["C"]), "line 2: field 'pred' must be a string, a number or null"),
        (bad(answer=True), "line 2: field 'answer' must be"),
        (
            bad(prompt_id=1, prompt="hello", model="b"),
            "line 2: prompt_id '1' was given a different",
        ),
    ],
)
def test_a_bad_row_names_its_line_and_field(tmp_path: Path, line: Any, message: str) -> None:
    path = write(tmp_path / "bad.jsonl", [rows()[0], line])
    with pytest.raises(ValueError, match=message):
        load_outcomes(path)


def test_parsed_and_gold_answers_are_kept_per_cell_and_per_prompt(tmp_path: Path) -> None:
    items = [
        {**rows()[0], "pred": "C", "answer": "C"},
        {**rows()[1], "pred": None, "answer": "C"},
        {
            "prompt_id": 2,
            "prompt": "2+2?",
            "model": "a",
            "quality": 1,
            "cost_usd": 0,
            "pred": 4,
            "answer": 4.0,
        },
    ]
    data = load_outcomes(write(tmp_path / "o.jsonl", items))
    assert data.preds == {("1", "a"): "C", ("2", "a"): "4"}
    assert data.answers == {"1": "C", "2": "4"}  # 4.0 and 4 are one number
    assert data.subset([1]).preds == {("2", "a"): "4"}
    assert data.subset([1]).answers == {"2": "4"}
    assert data.with_models(["b"]).preds == {}
    clash = [*items, {**items[1], "model": "c", "answer": "B"}]
    with pytest.raises(ValueError, match="line 4: prompt_id '1' was given a different 'answer'"):
        load_outcomes(write(tmp_path / "clash.jsonl", clash))


def test_bad_paths_and_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_outcomes(tmp_path / "missing.jsonl")
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(ValueError, match="cannot tell the layout"):
        load_outcomes(tmp_path / "data.csv")
    with pytest.raises(ValueError, match="exactly one outcomes"):
        load_outcomes(tmp_path)
    with pytest.raises(ValueError, match="no outcomes"):
        load_outcomes(write(tmp_path / "empty.jsonl", [""]))


def routerbench_records() -> list[dict[str, Any]]:
    return [
        {
            "sample_id": "mmlu.1",
            "prompt": "2+2?",
            "eval_name": "mmlu",
            "gpt-4": 1.0,
            "gpt-4|total_cost": 0.003,
            "gpt-4|model_response": "4",
            "llama": 0.0,
            "llama|total_cost": 0.0001,
            "llama|model_response": "5",
            "oracle_model_to_route_to": "llama",
        },
        {
            "sample_id": "mtbench.7",
            "prompt": "['Write a poem.', 'Make it shorter.']",  # RouterBench's MT-Bench form
            "eval_name": "mt-bench",
            "gpt-4": 0.9,
            "gpt-4|total_cost": 0.01,
            "gpt-4|model_response": "…",
            "llama": float("nan"),
            "llama|total_cost": float("nan"),
            "llama|model_response": None,
            "oracle_model_to_route_to": "gpt-4",
        },
    ]


def test_routerbench_rows_become_outcomes_with_eval_name_as_source() -> None:
    data = outcomes_from_routerbench(routerbench_records(), name="routerbench")
    assert data.models == ("gpt-4", "llama")
    assert data.sources == ["mmlu", "mt-bench"]
    assert data.quality[0].tolist() == [1.0, 0.0]
    assert np.isnan(data.quality[1, 1])
    assert data.cost_decimal(0, "llama") == Decimal("0.0001")
    assert data.responses[("mmlu.1", "gpt-4")] == "4"
    # Multi-turn prompts keep every turn, each a user message.
    assert [m["content"] for m in data.prompts[1].messages] == ["Write a poem.", "Make it shorter."]
    assert "shorter" in data.prompts[1].text


def test_routerbench_bad_cells_name_row_and_column() -> None:
    bad = routerbench_records()
    bad[1]["gpt-4"] = 7.0
    with pytest.raises(ValueError, match="row 1: column 'gpt-4'"):
        outcomes_from_routerbench(bad, name="rb")
    with pytest.raises(ValueError, match="missing column 'eval_name'"):
        outcomes_from_routerbench([{"sample_id": 1, "prompt": "x"}], name="rb")


def test_routerbench_pickle_without_pandas_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # importing it now fails
    path = tmp_path / "routerbench_0shot.pkl"
    path.write_bytes(b"not read")
    with pytest.raises(ValueError, match="without pandas"):
        load_outcomes(path)


@pytest.mark.skipif(not HAS_PANDAS, reason="pandas is not installed (RouterBench files need it)")
def test_routerbench_pickle_round_trip(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "routerbench_0shot.pkl"
    pd.DataFrame(routerbench_records()).to_pickle(path)
    data = load_outcomes(path)
    assert data.models == ("gpt-4", "llama")
    assert data.sources == ["mmlu", "mt-bench"]


@needs_data("gsm8k-routing")
def test_gsm8k_loads_with_parsed_answers_that_agree_with_quality() -> None:
    data = load_outcomes(SHARED_DATA / "gsm8k-routing")
    assert data.quality.shape == (815, 43)
    # The README: quality is 1 exactly when the parsed number equals the gold one.
    agree = [
        (
            data.preds.get((p.id, m)) is not None
            and float(data.preds[(p.id, m)]) == float(data.answers[p.id])
        )
        == bool(data.quality[i, j])
        for i, p in enumerate(data.prompts[:50])
        for j, m in enumerate(data.models)
    ]
    assert np.mean(agree) > 0.99


@needs_data("alpacaeval-routing")
def test_alpacaeval_loads_from_its_folder() -> None:
    data = load_outcomes(SHARED_DATA / "alpacaeval-routing")
    assert isinstance(data, OutcomeSet)
    assert data.name == "alpacaeval-routing"
    assert len(data.models) >= 2
    assert not np.isnan(data.quality).all()
    ref = data.model_index("gpt4_1106_preview")
    # The README: the reference model scores 0.5 against itself by construction.
    assert np.allclose(data.quality[:, ref], 0.5)
    assert (data.input_tokens >= 0).all()
    assert float(data.cost_decimal(3, data.models[1])) == pytest.approx(data.cost_usd[3, 1])
