"""`modelyard keys` and `modelyard budgets` on a SQLite ledger: bad input is a clear
error with exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from modelyard.cli import app

runner = CliRunner()


def test_keys_and_budgets_round_trip(tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path / 'l.db'}"]
    r = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--name",
            "bot",
            "--team",
            "support",
            "--budget",
            "50/month",
            "--rpm",
            "600",
            *db,
        ],
    )
    assert r.exit_code == 0, r.output
    secret = r.output.strip().splitlines()[-1]
    assert secret.startswith("my-")
    listed = runner.invoke(app, ["keys", "list", *db]).output
    assert "bot" in listed
    assert secret not in listed
    assert (
        runner.invoke(app, ["budgets", "set", "--team", "support", "500/month", *db]).exit_code == 0
    )
    assert "support" in runner.invoke(app, ["budgets", "list", *db]).output
    rotated = runner.invoke(app, ["keys", "rotate", "bot", *db]).output.strip().splitlines()[-1]
    assert rotated.startswith("my-")
    assert rotated != secret
    assert runner.invoke(app, ["keys", "revoke", "bot", *db]).exit_code == 0
    assert "revoked_at" in runner.invoke(app, ["keys", "show", "bot", *db]).output
    usage = runner.invoke(app, ["usage", "--by", "key,team,model", *db])
    assert usage.exit_code == 0, usage.output


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path / 'l.db'}"]
    cases = {
        "1e400/month": "above the maximum",
        "abc": "AMOUNT/PERIOD",
        "5/fortnight": "unknown budget period",
        "-5/month": "negative",
    }
    for text, why in cases.items():
        r = (
            runner.invoke(app, ["budgets", "set", "--team=t", f"{text}", *db])
            if not text.startswith("-")
            else runner.invoke(app, ["budgets", "set", "--team", "t", *db, "--", text])
        )
        assert r.exit_code == 2, (text, r.output)
        assert why in r.output.replace("\n", " "), (text, r.output)
    r = runner.invoke(app, ["keys", "create", "--name", "bad name!", *db])
    assert r.exit_code == 2
    assert "name" in r.output
    r = runner.invoke(app, ["keys", "create", "--name", "x", "--max-data-class", "secret", *db])
    assert r.exit_code == 2
    assert "data class" in r.output
    assert runner.invoke(app, ["keys", "revoke", "nobody", *db]).exit_code == 2
