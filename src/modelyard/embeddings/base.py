"""The encoder protocol, the text a request is embedded as, and a NumPy-only encoder."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
# Batch size for encoding a whole training or test set: big enough to amortise the
# per-call cost, small enough that a progress bar moves.
ENCODE_BATCH = 64

_TOKEN = re.compile(r"\w+", re.UNICODE)


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 row vectors, one row per text.

    `id` names the encoder and its weights exactly (it goes into every artifact
    trained on its vectors, and a mismatch at load time is an error); `dim` is the
    vector width."""

    id: str
    dim: int
    max_tokens: int | None

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """How many encoder tokens each text has (before truncation at `max_tokens`),
        so callers can reject or warn about texts the encoder would cut."""
        ...

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Shape (len(texts), dim), float32, each row of unit length (or all zero
        for a text with no tokens)."""
        ...


def encode_batched(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    batch: int = ENCODE_BATCH,
    advance: Callable[[int], None] | None = None,
) -> Vectors:
    """Encode a data set in batches, calling `advance(n)` after each batch of n texts
    so a progress bar can move; shape (len(texts), encoder.dim)."""
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        out[start : start + len(chunk)] = encoder.encode(chunk)
        if advance is not None:
            advance(len(chunk))
    return out


def conversation_text(messages: Iterable[Mapping[str, Any]]) -> str:
    """The text a chat request is embedded as: every turn, not only the last one,
    so a follow-up like "and in French?" is scored with its context. System and
    tool turns are kept; images and audio contribute nothing."""
    lines: list[str] = []
    for message in messages:
        text = _content_text(message.get("content"))
        if text:
            lines.append(f"{message.get('role', 'user')}: {text}")
    return "\n".join(lines)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


class HashingEncoder:
    """Bag of words hashed into `dim` buckets (signed), L2-normalised.

    No weights and no extra dependencies: fast enough for unit tests, and a
    usable (weak) baseline for a user without the `learned` extra."""

    max_tokens: int | None = None

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.id = f"hashing-bow-{dim}"

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(_TOKEN.findall(text)) for text in texts]

    def encode(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
