"""`modelyard serve --workers 2`: two processes on one port, one SQLite ledger."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from modelyard.testing.upstream import FakeUpstream, create_fake_upstream
from tests.e2e.conftest import ANTHROPIC_KEY, GPT, OPENAI_KEY, LiveServer, stack_config

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the workers did not start")


def _writers(ledger: Path) -> set[int]:
    with sqlite3.connect(ledger) as db:
        return {pid for (pid,) in db.execute("SELECT pid FROM ledger_writers")}


async def _burst(base: str, n: int) -> list[httpx.Response]:
    """`n` concurrent calls, each on its own connection, so the kernel spreads them."""

    async def one(i: int) -> httpx.Response:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            body = {"model": GPT, "messages": [{"role": "user", "content": f"hi {i}"}]}
            return await client.post("/v1/chat/completions", json=body)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_two_workers_answer_and_share_one_ledger(tmp_path: Path) -> None:
    state = FakeUpstream(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)
    upstream = LiveServer(create_fake_upstream(state), "fake-upstream")
    upstream.start()
    config = tmp_path / "stack.yaml"
    config.write_text(yaml.safe_dump(stack_config(upstream.url)), encoding="utf-8")
    ledger = tmp_path / "ledger.db"
    port = _free_port()
    env = {
        **os.environ,
        "E2E_OPENAI_KEY": OPENAI_KEY,
        "E2E_ANTHROPIC_KEY": ANTHROPIC_KEY,
        "MODELYARD_DATABASE_URL": f"sqlite:///{ledger}",
        # The metrics directory is made under TMPDIR: here, where the test can see it.
        "TMPDIR": str(tmp_path),
    }
    env.pop(("PROMETHEUS_MULTIPROC_DIR"), None)
    command = [sys.executable, "-m", "modelyard", "serve", "--config", str(config)]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        deadline = time.monotonic() + 30
        while len(_writers(ledger)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        worker_pids = _writers(ledger)
        assert len(worker_pids) == 2
        assert proc.pid not in worker_pids
        (metrics_dir,) = tmp_path.glob("modelyard-metrics-*")
        answers: list[httpx.Response] = []
        for _ in range(10):  # until both workers have answered
            answers += asyncio.run(_burst(base, 16))
            with sqlite3.connect(ledger) as db:
                owners = {o.split(":")[1] for (o,) in db.execute("SELECT owner FROM call_records")}
            if len(owners) == 2:
                break
        # prometheus-client in each worker writes its values under the shared dir.
        metric_files = {p.name for p in metrics_dir.iterdir()}
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        upstream.stop()
    assert all(a.status_code == 200 for a in answers), output
    assert owners == {str(pid) for pid in worker_pids}, output
    assert any(str(pid) in name for name in metric_files for pid in worker_pids)
    with sqlite3.connect(ledger) as db:
        statuses = [s for (s,) in db.execute("SELECT status FROM call_records")]
    # Every answer has its record in the one ledger, and neither worker's start-up
    # sweep closed the other's attempts as interrupted.
    assert len(statuses) == len(answers)
    assert set(statuses) == {"ok"}
    assert len(state.requests) == len(answers)
    assert not metrics_dir.exists()  # removed at exit
