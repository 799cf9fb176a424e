"""`--workers N`: two real processes write metrics into one PROMETHEUS_MULTIPROC_DIR;
a scrape of either sees the sum of counters, the worst breaker among live workers,
and a worker that stopped keeps its counts but drops its live gauges."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.observability.scrape import Key, parse, total, value

ROOT = Path(__file__).resolve().parents[2]


def start(model: str, n: int, fail: bool, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.observability.mp_worker",
            model,
            str(n),
            "1" if fail else "0",
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_ready(worker: subprocess.Popen[str]) -> None:
    assert worker.stdout is not None
    line = worker.stdout.readline()
    assert line.strip() == "ready", f"worker said {line!r} (exit {worker.poll()})"


def scrape(worker: subprocess.Popen[str]) -> dict[Key, float]:
    assert worker.stdin is not None
    assert worker.stdout is not None
    worker.stdin.write("scrape\n")
    worker.stdin.flush()
    lines = []
    while (line := worker.stdout.readline()).strip() != "END":
        assert line, f"worker exited (code {worker.poll()})"
        lines.append(line)
    return parse("".join(lines))


def stop(worker: subprocess.Popen[str]) -> None:
    assert worker.stdin is not None
    worker.stdin.close()
    assert worker.wait(timeout=30) == 0


@pytest.mark.slow
def test_two_workers_one_scrape_sees_the_sum(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    # Worker A: 5 failed attempts on cheapco open its breaker; worker B: 4 answers.
    a = start("cheap", 5, True, env)
    b = start("frontier", 4, False, env)
    try:
        wait_ready(a)
        wait_ready(b)
        samples = scrape(b)
        requests = "modelyard_requests_total"
        assert value(samples, requests, policy="frontier", model="frontier", status="200") == 4
        assert value(samples, requests, policy="cheap", model="none", status="502") == 5
        assert total(samples, "modelyard_attempts_total") == 9
        assert total(samples, "modelyard_tokens_total", type="output") == 4 * 20
        # Only A's breaker is open; the aggregate keeps the worst live worker's state.
        assert value(samples, "modelyard_breaker_state", deployment="cheapco") == 2
        assert value(samples, "modelyard_breaker_state", deployment="bigco") == 0
        assert (
            scrape(a) == samples
            or value(scrape(a), requests, policy="frontier", model="frontier", status="200") == 4
        )
        stop(a)
        after = scrape(b)
        assert value(after, requests, policy="cheap", model="none", status="502") == 5, (
            "a stopped worker's counts stay in the sums"
        )
        assert value(after, "modelyard_breaker_state", deployment="cheapco") == 0, (
            "its breaker gauge went with it"
        )
    finally:
        for w in (a, b):
            if w.poll() is None:
                w.kill()
                w.wait()
