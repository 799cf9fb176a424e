"""`modelyard review list | show | resolve` against a SQLite ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import anyio
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.council.reviews import Review, reviews_for
from modelyard.ledger import SqlLedger

runner = CliRunner()


async def seed(url: str) -> None:
    ledger = SqlLedger(url)
    await ledger.open()
    try:
        await reviews_for(ledger).add(
            Review(
                id="rev_1",
                request_id="req-1",
                decision_id="dec_1",
                policy="council",
                status="pending",
                request={"model": "council"},
                members=[{"model": "a", "answer": "A"}, {"model": "b", "answer": "B"}],
                claims=[],
                answer="A",
                agreement=0.5,
                reason="1 of 2 members answer 'a'",
                cost_usd=Decimal("0.002"),
                created_at=datetime(2026, 11, 29, tzinfo=UTC),
            )
        )
    finally:
        await ledger.close()


def test_review_list_show_and_resolve(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    anyio.run(seed, url)
    env = {"COLUMNS": "200"}
    listed = runner.invoke(app, ["review", "list", "--database", url], env=env)
    assert listed.exit_code == 0, listed.output
    assert "rev_1" in listed.output
    assert "0.50" in listed.output

    shown = runner.invoke(app, ["review", "show", "rev_1", "--database", url], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["members"][1]["answer"] == "B"

    fixed = tmp_path / "answer.txt"
    fixed.write_text("B, because ...", encoding="utf-8")
    cmd = ["review", "resolve", "rev_1", "--edit", str(fixed), "--by", "erin", "--database", url]
    done = runner.invoke(app, cmd, env=env)
    assert done.exit_code == 0, done.output
    assert "rev_1: edited by erin" in done.output

    again = runner.invoke(
        app, ["review", "resolve", "rev_1", "--accept", "--database", url], env=env
    )
    assert again.exit_code == 1
    assert "already resolved (edited by erin)" in again.output
    shown = runner.invoke(app, ["review", "show", "rev_1", "--database", url], env=env)
    assert json.loads(shown.output)["resolution"] == "B, because ..."
    pending = runner.invoke(app, ["review", "list", "--database", url], env=env)
    assert "rev_1" not in pending.output


def test_review_resolve_needs_exactly_one_action(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    both = runner.invoke(app, ["review", "resolve", "x", "--accept", "--reject", "--database", url])
    assert both.exit_code == 2
    assert "exactly one of" in both.output
    missing = runner.invoke(app, ["review", "show", "nope", "--database", url])
    assert missing.exit_code == 1
    assert "no review 'nope'" in missing.output
