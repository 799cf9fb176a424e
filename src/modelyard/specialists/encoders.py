"""Resolving an encoder by the name an artifact records, and encoding in batches.

Specialists name their encoder with the names `modelyard.embeddings.load_encoder`
knows ("minilm-l6-v2", "hashing-256", ...), so an artifact can rebuild the exact
encoder it was trained on. The shared instance is wrapped in a content-hash cache:
a specialist sees the same ticket texts again and again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from modelyard.embeddings import Encoder, load_encoder
from modelyard.embeddings.base import Vectors

DEFAULT_ENCODER = "minilm-l6-v2"
BATCH = 64

Progress = Callable[[int], None]


def get_encoder(name: str) -> Encoder:
    """The process-wide encoder called `name` (ConfigError listing known names if none)."""
    return load_encoder(name)


def encode_batched(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    batch: int = BATCH,
    advance: Progress | None = None,
) -> Vectors:
    """Encode in batches so a progress bar can move; shape (len(texts), encoder.dim)."""
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        out[start : start + len(chunk)] = encoder.encode(chunk)
        if advance is not None:
            advance(len(chunk))
    return out
