"""The processes under test: the compiled fake upstream, modelyard, LiteLLM's proxy;
pinning them to cores and reading their CPU time (and everybody else's)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_upstream(workdir: Path) -> Path:
    """Compile the fake upstream with gcc (-O2)."""
    binary = workdir / "upstream"
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise SystemExit("bench/gateway.py needs gcc (or cc) to build its fake upstream")
    subprocess.run([cc, "-O2", "-o", str(binary), str(HERE / "upstream.c")], check=True)
    return binary


def tree_pids(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers, LiteLLM's children)."""
    pids = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for token in child.read_text().split():
            pids.extend(tree_pids(int(token)))
    return pids


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICKS


class Process:
    """A started process pinned to `cores`, stopped on `stop()`."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        cores: Sequence[int] | None,
        env: dict[str, str] | None = None,
        log: Path,
    ) -> None:
        self.name = name
        self.log = log
        prefix = ["taskset", "-c", ",".join(map(str, cores))] if cores else []
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [*prefix, *argv], env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

    @property
    def pids(self) -> list[int]:
        return tree_pids(self.proc.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def wait_http(self, url: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(url, timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.25)
        raise RuntimeError(f"{self.name} did not answer {url} in {timeout_s}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def modelyard_config(upstream_port: int, workdir: Path, *, baseline: bool = False) -> Path:
    """One OpenAI-format deployment on the fake upstream, one model, the default
    policy; shedding off (the saturation phase must queue, not shed)."""
    config = {
        "deployments": {
            "fake": {
                "adapter": "openai",
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key_env": "BENCH_UPSTREAM_KEY",
                "timeout_s": 30,
            }
        },
        "models": {
            "bench/model": {
                "deployment": "fake",
                "upstream": "bench-model",
                "capabilities": ["text"],
                "context_window": 128000,
                "max_output_tokens": 4096,
                "prices": {"input": "0.15", "output": "0.60"},
            }
        },
        "aliases": {"bench-model": "bench/model"},
        "policies": {"auto": {"type": "cheapest"}},
        "default_policy": "auto",
        "server": {"max_in_flight": 0},
    }
    if baseline:  # a checkout from before shedding: no such setting
        del config["server"]
    path = workdir / ("modelyard-baseline.yaml" if baseline else "modelyard.yaml")
    path.write_text(yaml.safe_dump(config))
    return path


def start_modelyard(
    ledger_url: str,
    upstream_port: int,
    workdir: Path,
    *,
    cores: Sequence[int] | None,
    workers: int = 1,
    src: Path | None = None,
    name: str | None = None,
) -> tuple[Process, int]:
    """`modelyard serve` on a free port; `src` runs another checkout's `src/` (an
    older commit, for A/B) with this environment's dependencies."""
    port = free_port()
    env = {
        **os.environ,
        "BENCH_UPSTREAM_KEY": "sk-bench",
        "MODELYARD_DATABASE_URL": ledger_url,
        "MODELYARD_HOME": str(workdir / "home"),
    }
    if src is not None:
        env["PYTHONPATH"] = str(src)
    argv = [sys.executable, "-m", "modelyard", "serve", "--config"]
    argv += [str(modelyard_config(upstream_port, workdir, baseline=src is not None))]
    argv += ["--port", str(port)]
    if workers != 1:
        argv += ["--workers", str(workers)]
    name = name or f"modelyard-{workers}w"
    proc = Process(name, argv, cores=cores, env=env, log=workdir / f"{name}.log")
    proc.wait_http(f"http://127.0.0.1:{port}/health")
    return proc, port


def litellm_binary(explicit: str | None) -> Path | None:
    """LiteLLM's `litellm` CLI from `--litellm` or `$LITELLM_BIN`, or the default
    venv `/work/litellm-venv`; None when not installed."""
    for candidate in (explicit, os.environ.get("LITELLM_BIN"), "/work/litellm-venv/bin/litellm"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def start_litellm(
    binary: Path, upstream_port: int, workdir: Path, *, cores: Sequence[int] | None
) -> tuple[Process, int]:
    """LiteLLM's proxy, no database, one worker, the same fake upstream."""
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": "bench-model",
                "litellm_params": {
                    "model": "openai/bench-model",
                    "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": "sk-bench",
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "set_verbose": False},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        # The load generator sends `Authorization: Bearer sk-bench` to every target.
        "LITELLM_MASTER_KEY": "sk-bench",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "TMPDIR": tempfile.gettempdir(),
    }
    env.pop("DATABASE_URL", None)
    argv = [str(binary), "--config", str(path), "--port", str(port), "--num_workers", "1"]
    proc = Process("litellm", argv, cores=cores, env=env, log=workdir / "litellm.log")
    proc.wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout_s=240)
    return proc, port
