"""The command line: models, route explain, usage, and `serve` with no keys at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest
import yaml
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.ledger import CallRecord, SqlLedger
from tests.stack import STACK

runner = CliRunner()
NO_KEYS = {
    k: ""
    for k in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "DEEPSEEK_API_KEY",
        "GROQ_API_KEY",
        "MISTRAL_API_KEY",
    )
}


def test_models_lists_prices_with_their_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    result = runner.invoke(app, ["models"], env={**NO_KEYS, "OPENAI_API_KEY": "sk-x"})
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if "openai/gpt-5-mini " in ln)
    assert "0.25" in line
    assert "genai-prices" in line
    assert "yes" in line
    claude = next(ln for ln in result.output.splitlines() if "claude-haiku-4-5" in ln)
    assert " no " in claude


def test_route_explain_prints_the_decision() -> None:
    result = runner.invoke(
        app,
        ["route", "explain", "write a haiku", "--model", "cheapest"],
        env={**NO_KEYS, "ANTHROPIC_API_KEY": "k"},
    )
    assert result.exit_code == 0, result.output
    assert '"policy": "cheapest"' in result.output
    assert '"model": "anthropic/claude-haiku-4-5"' in result.output
    assert "OPENAI_API_KEY is not set" in result.output


def test_route_explain_without_keys_names_them() -> None:
    result = runner.invoke(app, ["route", "explain", "hi"], env=NO_KEYS)
    assert result.exit_code == 1
    assert "ServiceUnavailableError" in result.output
    assert "OPENAI_API_KEY" in result.output


def test_bad_config_exits_2_with_the_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models: {x: {deployment: nope, context_window: 1, max_output_tokens: 1}}\n")
    result = runner.invoke(app, ["models", "--config", str(path)])
    assert result.exit_code == 2
    assert "models.x.deployment" in result.output


async def _seed_ledger(url: str) -> None:
    ledger = SqlLedger(url)
    await ledger.open()
    for i, (model, cost) in enumerate([("a", "0.25"), ("a", "0.5"), ("b", "1.125")]):
        await ledger.write(
            CallRecord(
                id=f"r{i}",
                request_id=f"q{i}",
                decision_id="d",
                policy="auto",
                model_id=model,
                deployment="dep",
                upstream_model=model,
                attempt=1,
                started_at=datetime.now(UTC),
                latency_ms=1.0,
                status="ok",
                input_tokens=10,
                output_tokens=5,
                cost_usd=Decimal(cost),
            )
        )
    await ledger.close()


def test_usage_reports_spend_by_model_and_day(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    anyio.run(_seed_ledger, url)
    result = runner.invoke(
        app, ["usage", "--by", "model", "--database", url], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "total: $1.875" in result.output
    row_a = next(ln for ln in result.output.splitlines() if "│ a " in ln)
    assert "0.75" in row_a


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_with_no_keys_starts_and_explains(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, **NO_KEYS, "MODELYARD_HOME": str(tmp_path)}
    env.pop("MODELYARD_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        models = httpx.get(f"{base}/v1/models").json()
        assert any(m["id"] == "openai/gpt-5-mini" for m in models["data"])
        routed = httpx.post(
            f"{base}/v1/route", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert routed.status_code == 200
        assert routed.json()["status"] == 503
        chat = httpx.post(
            f"{base}/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 503
        message = chat.json()["error"]["message"]
        assert "OPENAI_API_KEY" in message
        assert "ANTHROPIC_API_KEY" in message
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert "disabled openai: OPENAI_API_KEY is not set" in output
    assert "chat calls will get 503" in output


def test_usage_reads_the_ledger_its_config_names_and_says_which(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-config.db'}"
    anyio.run(_seed_ledger, url)
    config = tmp_path / "stack.yaml"
    config.write_text(yaml.safe_dump({**STACK, "ledger_url": url}), encoding="utf-8")
    env = {"COLUMNS": "200", "MODELYARD_HOME": str(tmp_path / "home"), "MODELYARD_DATABASE_URL": ""}
    result = runner.invoke(app, ["usage", "--config", str(config), "--by", "model"], env=env)
    assert result.exit_code == 0, result.output
    assert f"ledger: {url}" in result.output
    assert "total: $1.875" in result.output
    header = next(ln for ln in result.output.splitlines() if "calls" in ln)
    # `--by model` has no day column, and `--by day` no model column.
    assert "model" in header
    assert "day" not in header
    by_day = runner.invoke(app, ["usage", "--config", str(config), "--by", "day"], env=env)
    assert by_day.exit_code == 0, by_day.output
    header = next(ln for ln in by_day.output.splitlines() if "calls" in ln)
    assert "day" in header
    assert "model" not in header


def test_usage_names_a_postgres_ledger_without_its_password() -> None:
    result = runner.invoke(
        app,
        ["usage", "--database", "postgresql://bob:s3cret@127.0.0.1:1/none"],
        env={"COLUMNS": "200"},
    )
    assert "ledger: postgresql://bob@127.0.0.1:1/none" in result.output
    assert "s3cret" not in result.output


def test_the_start_up_banner_keeps_the_database_user_not_the_password() -> None:
    from modelyard.app_factory import Stack
    from modelyard.config import Config

    config = Config(ledger_url="postgresql://bob:s3cret@db.internal:5432/ledger")
    stack = Stack(config, "t.yaml", {})
    assert stack.ledger_url_display == "postgresql://bob@db.internal:5432/ledger"
