"""Encoders for evaluation: by name, and embedded once per prompt.

An evaluation trains many scorers (folds × routers) and scores every prompt dozens
of times (once per knob value), always on the same few hundred texts.
`PrecomputedEncoder` embeds each distinct text once, in batches, and afterwards
answers from memory; it pickles with its vectors (not the model behind them), so
worker processes get the embeddings without loading the encoder. With a cache
folder, the vectors of a set of texts are also kept on disk, in one file named by the
encoder id and a hash of the texts, so a second evaluation of the same data skips
the embedding (MiniLM takes minutes for a few thousand prompts on two cores).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.embeddings import Encoder
from modelyard.embeddings.base import Vectors

BATCH = 64


def load_named_encoder(name: str) -> Encoder:
    """Any name `modelyard.embeddings.load_encoder` knows: "minilm-l6-v2" (needs the
    `learned` extra), "hashing-<dim>" (NumPy only), …; an unknown name is a ConfigError.

    The process-wide cache in front of it is bypassed: a vector can differ in its last
    bits with the batch it was computed in, so vectors cached earlier in the process
    (by other batches) would make results depend on what ran before."""
    from modelyard.embeddings import load_encoder

    shared = load_encoder(name)
    inner: Encoder = getattr(shared, "inner", shared)
    return inner


class PrecomputedEncoder:
    """An `Encoder` that remembers every text's vector; see the module docstring."""

    def __init__(self, inner: Encoder | None, *, name: str | None = None) -> None:
        self._inner = inner
        self._name = name
        self.id = inner.id if inner is not None else (name or "unknown")
        self.dim = inner.dim if inner is not None else 0
        self.max_tokens = inner.max_tokens if inner is not None else None
        self._vectors: dict[str, Vectors] = {}
        self.misses = 0

    @classmethod
    def named(cls, name: str) -> PrecomputedEncoder:
        return cls(load_named_encoder(name), name=name)

    def _encoder(self) -> Encoder:
        if self._inner is None:
            if self._name is None:
                raise RuntimeError("this PrecomputedEncoder has no encoder to embed new texts")
            self._inner = load_named_encoder(self._name)
        return self._inner

    def warm(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
        *,
        cache_dir: Path | None = None,
    ) -> None:
        """Embed every text not seen yet, `BATCH` at a time; `progress(n)` after each
        batch. With `cache_dir`, read them from there when this encoder embedded
        exactly these texts before, and write them there when not."""
        # A fixed order (by length, then text) makes every batch, hence every vector,
        # the same from run to run for the same texts.
        todo = sorted({t for t in texts if t not in self._vectors}, key=lambda t: (len(t), t))
        file = self._cache_file(cache_dir, todo) if cache_dir is not None and todo else None
        if file is not None and file.is_file():
            with np.load(file) as stored:
                vectors = stored["vectors"]
            if vectors.shape == (len(todo), self.dim):
                self._vectors.update(zip(todo, vectors, strict=True))
                if progress is not None:
                    progress(len(todo))
                return
        self._embed(todo, progress)
        if file is not None:
            _save_atomically(file, np.stack([self._vectors[t] for t in todo]))

    def _cache_file(self, folder: Path, texts: Sequence[str]) -> Path:
        digest = hashlib.sha256(self.id.encode())
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
        slug = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in self.id)
        return folder / f"{slug}-{len(texts)}-{digest.hexdigest()[:20]}.npz"

    def _embed(self, todo: Sequence[str], progress: Callable[[int], None] | None) -> None:
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            vectors = self._encoder().encode(batch)
            self._vectors.update(zip(batch, vectors, strict=True))
            if progress is not None:
                progress(len(batch))

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return self._encoder().token_lengths(texts)

    def encode(self, texts: Sequence[str]) -> Vectors:
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            self.misses += len(missing)
            self.warm(missing)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32, copy=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_inner"] = None  # an ONNX session does not pickle; reloaded by name on a miss
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _save_atomically(file: Path, vectors: Vectors) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, vectors=vectors)
    os.replace(tmp, file)


def default_vector_cache() -> Path:
    """`$MODELYARD_HOME/vectors`, else `~/.modelyard/vectors`."""
    home = os.environ.get("MODELYARD_HOME")
    root = Path(home).expanduser() if home else Path("~/.modelyard").expanduser()
    return root / "vectors"
