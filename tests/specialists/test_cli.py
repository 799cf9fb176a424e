"""`modelyard specialist train | eval | distill | list` on small data with the hashing encoder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import anyio
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.engine import build_engine
from modelyard.ledger import SqlLedger
from modelyard.providers.function import FunctionProvider
from modelyard.specialists.manifest import read_manifest, resolve
from modelyard.types import ChatRequest, Completion, Usage
from tests.specialists.conftest import ENCODER
from tests.specialists.helpers import LABELS, VOCAB, make_rows, write_csv, write_jsonl
from tests.stack import ENV, stack_config

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["specialist", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_train_then_eval_then_list(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", make_rows(30, seed=1), header=("body", "intent"))
    held = write_jsonl(tmp_path / "held.jsonl", make_rows(10, seed=2))
    home = str(tmp_path / "sp")
    code, out = run(
        "train", "--name", "support", "--data", str(train), "--text", "body",
        "--label", "intent", "--encoder", ENCODER, "--dir", home,
    )  # fmt: skip
    assert code == 0, out
    assert "90 rows, 3 labels" in out
    assert "held-out accuracy" in out
    assert "specialist/support" in out
    manifest = read_manifest(Path(home) / "support")
    assert manifest.task == "support"
    assert manifest.labels == LABELS

    code, out = run("eval", "--name", "support", "--data", str(held), "--dir", home)
    assert code == 0, out
    assert "macro-F1" in out
    assert "ECE" in out
    version = resolve(Path(home) / "support")
    report = json.loads((version / "eval.json").read_text())
    assert report["rows"] == 30
    assert 0.8 <= report["accuracy"] <= 1
    assert (version / "eval.png").stat().st_size > 1000

    code, out = run("list", "--dir", home)
    assert code == 0
    assert "specialist/support" in out
    assert "v1" in out


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ("text,label\n", "no data rows"),
        ("text,label\nx,a\ny,a\n", "1 distinct label(s)"),
        ("text,category\nx,a\n", "no column 'label'"),
        ("text,label\nx,a\n,b\n", "line 3: column 'text' is empty"),
    ],
)
def test_train_refuses_bad_data_with_the_reason(tmp_path: Path, rows: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(rows)
    code, out = run(
        "train", "--name", "x", "--data", str(path), "--encoder", ENCODER, "--dir", str(tmp_path)
    )
    assert code == 2
    assert needle in " ".join(out.split())


def test_eval_refuses_labels_the_specialist_does_not_know(
    intents_dir: Path, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "held.csv", [("refund please", "billing"), ("hi", "sales")])
    code, out = run(
        "eval", "--name", "intents", "--data", str(path), "--dir", str(intents_dir.parent)
    )
    assert code == 2
    assert "line 3: 'sales'" in " ".join(out.split())


def teacher_answer(text: str, rng: random.Random) -> str:
    """A 'frontier model' that answers in the forms models really use, and sometimes rambles."""
    label = next(lab for lab in LABELS if any(w in text.split() for w in VOCAB[lab].split()))
    return rng.choice([label, label.title() + ".", json.dumps({"label": label}), "Not sure, sorry"])


async def capture_traffic(url: str, n: int) -> None:
    rng = random.Random(0)

    async def complete(request: ChatRequest, upstream: str) -> Completion:
        text = str(request.messages[-1].content)
        return Completion("c", upstream, teacher_answer(text, rng), usage=Usage(10, 2))

    ledger = SqlLedger(url)
    await ledger.open()
    providers = {d: FunctionProvider(complete) for d in ("cheapco", "bigco", "onprem")}
    engine = build_engine(
        stack_config(capture={"tasks": ["tickets"]}), env=ENV, ledger=ledger, providers=providers
    )
    for text, _ in make_rows(n, seed=4):
        body = {
            "messages": [
                {"role": "system", "content": "Answer with one of: billing, login, shipping."},
                {"role": "user", "content": text},
            ],
            "modelyard": {"task": "tickets"},
        }
        await engine.complete(ChatRequest.model_validate(body))
    await ledger.close()


def test_distill_from_the_ledger_shows_the_set_then_trains(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    anyio.run(capture_traffic, url, 20)
    home = str(tmp_path / "sp")
    base = ["distill", "--name", "tickets", "--from-ledger", "--database", url, "--dir", home]
    code, out = run(*base, "--encoder", ENCODER)
    assert code == 2
    assert "pass --labels" in out  # no artifact yet to take the label set from

    code, out = run(*base, "--labels", ",".join(LABELS), "--dry-run")
    assert code == 0, out
    assert "60 teacher answer(s)" in out
    assert "could not be parsed" in out
    assert "label distribution" in out
    assert not (Path(home) / "tickets").exists()

    code, out = run(*base, "--labels", ",".join(LABELS), "--encoder", ENCODER)
    assert code == 0, out
    assert out.index("label distribution") < out.index("held-out accuracy")
    manifest = read_manifest(Path(home) / "tickets")
    assert manifest.task == "tickets"
    assert manifest.training.source == "ledger task 'tickets'"
    assert 30 <= manifest.training.rows < 60  # the rambling answers were left out


def test_distill_with_too_few_rows_says_how_to_capture_more(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    anyio.run(capture_traffic, url, 0)
    code, out = run(
        "distill", "--name", "t", "--from-ledger", "--database", url, "--labels", "a,b",
        "--dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2
    assert "capture: {tasks: [t]}" in " ".join(out.split())
