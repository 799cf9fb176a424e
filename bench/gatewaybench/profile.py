"""A flame-graph summary from py-spy: where the gateway's samples land.

`py-spy record --format raw` writes collapsed stacks (`frame;frame;... count`).
The summary gives the top functions by self samples and, by inclusive samples, the
share of the libraries on the hot path (each stack counted once per library).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

# Library -> the path fragment that marks its frames.
LIBRARIES = {
    "modelyard": r"[(/]modelyard/",
    "ledger (modelyard.ledger)": r"[(/]modelyard/ledger/",
    "sqlalchemy": r"[(/]sqlalchemy/",
    "aiosqlite / sqlite3": r"[(/](aiosqlite|sqlite3)/",
    "psycopg": r"[(/]psycopg",
    "httpx": r"[(/]httpx/",
    "httpcore": r"[(/]httpcore/",
    "anyio / sniffio": r"[(/](anyio|sniffio)/",
    "starlette / fastapi": r"[(/](starlette|fastapi)/",
    "pydantic": r"[(/]pydantic",
    "uvicorn": r"[(/]uvicorn/",
    "json": r"[(/]json/",
    "logging": r"[(/]logging/",
}
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:]*)(?::\d+)?\)$")


def record(pid: int, seconds: float, out: Path, native: bool = False) -> Path | None:
    """Sample `pid` (and its subprocesses) for `seconds`; the raw file, or None."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return None
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
    argv += ["--rate", "250", "--format", "raw", "--output", str(out), "--subprocesses"]
    if native:
        argv.append("--native")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return out if done.returncode == 0 and out.exists() else None


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text.strip())
    if not match:
        return text.strip(), ""
    return match["func"], match["file"]


def summarise(raw: Path, top: int = 15) -> str:
    """Top self functions and library shares on the event-loop thread, as text.

    Only the loop thread's samples count: the worker threads (aiosqlite's, anyio's)
    are sampled while they wait, which their CPU time (/proc) shows is idle."""
    self_counts: Counter[str] = Counter()
    library_counts: Counter[str] = Counter()
    total = 0
    loop_thread = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        if not any("Runner.run" in f for f in frames):
            continue
        loop_thread += count
        func, file = _frame(frames[-1])
        short = file.rsplit("site-packages/", 1)[-1].rsplit("/src/", 1)[-1]
        self_counts[f"{func} ({short})"] += count
        for name, marker in LIBRARIES.items():
            if any(re.search(marker, f) for f in frames):
                library_counts[name] += count
    if not loop_thread:
        return "  (no samples on the event-loop thread)"
    lines = [
        f"  {loop_thread} samples on the event-loop thread (of {total}); top by self samples:"
    ]
    for name, count in self_counts.most_common(top):
        lines.append(f"    {100 * count / loop_thread:5.1f}%  {name}")
    lines.append("  inclusive share by library (a stack counts once per library):")
    for name, count in library_counts.most_common():
        lines.append(f"    {100 * count / loop_thread:5.1f}%  {name}")
    return "\n".join(lines)
