"""The built-in stack, used when no `--config` is given.

It is `default_stack.yaml` (the mainstream models of the major providers, each
enabled when its key variable is set) plus any local OpenAI-compatible endpoints
the user names, e.g. ``--local http://127.0.0.1:11434/v1=llama3.2,qwen2.5`` for
Ollama. Local endpoints are private (they may see confidential data) and free.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import yaml

from modelyard.config import Config, parse
from modelyard.errors import ConfigError

DEFAULT_SOURCE = "built-in default stack"
LOCAL_CONTEXT_WINDOW = 32768
LOCAL_MAX_OUTPUT = 4096


def _read_default() -> dict[str, Any]:
    text = files("modelyard.catalog").joinpath("default_stack.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def parse_local(spec: str) -> tuple[str, list[str]]:
    """`URL=model[,model...]` → (url, models)."""
    url, sep, models = spec.partition("=")
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not sep or not url.startswith(("http://", "https://")) or not names:
        raise ConfigError(
            f"--local {spec!r}: expected URL=MODEL[,MODEL...], "
            "e.g. http://127.0.0.1:11434/v1=llama3.2"
        )
    return url.rstrip("/"), names


def default_config(local: Sequence[str] = ()) -> Config:
    """The built-in stack plus the named local endpoints."""
    data = _read_default()
    for i, spec in enumerate(local, start=1):
        url, names = parse_local(spec)
        dep = f"local{i}" if len(local) > 1 else "local"
        data["deployments"][dep] = {"adapter": "openai", "base_url": url, "private": True}
        for name in names:
            data["models"][f"{dep}/{name}"] = {
                "deployment": dep,
                "upstream": name,
                "family": "meta",
                "capabilities": ["text", "streaming", "json_mode"],
                "context_window": LOCAL_CONTEXT_WINDOW,
                "max_output_tokens": LOCAL_MAX_OUTPUT,
                "latency": {"ttft_ms": 300, "output_tokens_per_s": 40},
                "quality": {"default": 0.5},
            }
    return parse(data, DEFAULT_SOURCE)
