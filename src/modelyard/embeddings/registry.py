"""Encoders by name, one shared cached instance per name per process.

The MiniLM encoder takes a few hundred ms to open (seconds on the first run on a
machine, when its ONNX graph is built) and ~100 MB of memory, so the router, every
specialist and the evaluation harness share one instance and its vector cache rather
than each opening their own.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Final

from modelyard.embeddings.base import Encoder, HashingEncoder
from modelyard.embeddings.cache import CachedEncoder
from modelyard.embeddings.onnx_files import Precision
from modelyard.errors import ConfigError

DEFAULT_ENCODER: Final = "minilm-l6-v2"
# Fixed names; "hashing-<dim>" (any positive width) is accepted as well.
# "minilm-l6-v2" is the fast int8 graph (see onnx_files.DEFAULT_PRECISION); "-fp32"
# is the float graph whose vectors equal sentence-transformers' output.
_MINILM: Final[dict[str, Precision]] = {"minilm-l6-v2": "int8", "minilm-l6-v2-fp32": "fp32"}
_HASHING = re.compile(r"hashing-(\d+)")
THREADS_ENV: Final = "MODELYARD_ENCODER_THREADS"

_shared: dict[str, CachedEncoder] = {}
_lock = threading.Lock()


def known_encoders() -> list[str]:
    """The names `load_encoder` accepts, for help texts and error messages."""
    return [*_MINILM, "hashing-<dim>"]


def load_encoder(name: str = DEFAULT_ENCODER) -> CachedEncoder:
    """The process-wide encoder called `name`, created on first request.

    Unknown names, a missing `learned` extra and a failed ONNX build are ConfigErrors
    (encoders are opened at start-up, where configuration problems are reported)."""
    with _lock:
        encoder = _shared.get(name)
        if encoder is None:
            encoder = CachedEncoder(_create(name))
            _shared[name] = encoder
        return encoder


def clear_shared_encoders() -> None:
    """Drop the shared instances (tests, or after changing `MODELYARD_HOME`)."""
    with _lock:
        _shared.clear()


def _create(name: str) -> Encoder:
    hashing = _HASHING.fullmatch(name)
    if hashing is not None and int(hashing.group(1)) > 0:
        return HashingEncoder(dim=int(hashing.group(1)))
    precision = _MINILM.get(name)
    if precision is None:
        raise ConfigError(
            f"unknown encoder {name!r}; known encoders: {', '.join(known_encoders())}"
        )
    try:
        from modelyard.embeddings.minilm import MiniLMEncoder
    except ImportError as exc:
        raise ConfigError(
            f"encoder {name!r} needs the learned extra (pip install 'modelyard[learned]'): {exc}"
        ) from exc
    return MiniLMEncoder(precision=precision, threads=_threads())


def _threads() -> int | None:
    raw = os.environ.get(THREADS_ENV)
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{THREADS_ENV} must be a positive integer, got {raw!r}")
    return int(raw)
