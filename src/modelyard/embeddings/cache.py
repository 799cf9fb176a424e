"""An in-memory LRU of sentence vectors in front of any `Encoder`.

Routing sees the same prompts again (retries, replays, evaluation sweeps over one
dataset, a system prompt shared by many requests) and encoding is the dearest step of
a routing decision, so vectors are kept by a hash of the text.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from modelyard.embeddings.base import Encoder, Vectors


def _key(text: str) -> bytes:
    # 16 bytes: collisions are out of reach for any cache size, and the key is far
    # smaller than a long prompt would be as a dict key.
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class CachedEncoder:
    """Same protocol as `inner`; `encode` runs `inner` once, on the distinct texts it
    has not seen (or has evicted), and serves the rest from memory.

    `hits` counts texts answered from the cache (a text repeated within one call counts
    as a hit after its first occurrence), `misses` the texts `inner` had to encode.
    A lock guards the table so an event loop and worker threads can share one instance;
    `inner.encode` runs outside the lock, so a long batch does not block cache hits."""

    def __init__(self, inner: Encoder, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.inner = inner
        self.id = inner.id
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._table: OrderedDict[bytes, Vectors] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        counts = f"entries={len(self)}, hits={self.hits}, misses={self.misses}"
        return f"CachedEncoder({self.inner!r}, {counts})"

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return self.inner.token_lengths(texts)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Rows in the order of `texts`, each a copy (callers may modify them)."""
        keys = [_key(text) for text in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for row, key in enumerate(keys):
                vector = self._table.get(key)
                if vector is not None:
                    self._table.move_to_end(key)
                    out[row] = vector
                elif key in missing:
                    missing[key].append(row)
                else:
                    missing[key] = [row]
            self.misses += len(missing)
            self.hits += len(texts) - len(missing)
        if not missing:
            return out
        rows = [positions[0] for positions in missing.values()]
        fresh = self.inner.encode([texts[row] for row in rows])
        with self._lock:
            for (key, positions), vector in zip(missing.items(), fresh, strict=True):
                out[positions] = vector
                stored = vector.copy()
                stored.flags.writeable = False
                self._table[key] = stored
                self._table.move_to_end(key)
            while len(self._table) > self.max_entries:
                self._table.popitem(last=False)
        return out

    def clear(self) -> None:
        """Forget every vector and reset the counters."""
        with self._lock:
            self._table.clear()
            self.hits = 0
            self.misses = 0
