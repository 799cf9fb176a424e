"""What an embeddings call returns, what a provider must offer to make one, and how
vectors travel: as compact `array`s of floats (no NumPy in the core), read from and
written to OpenAI's JSON floats or base64 (little-endian float32)."""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

from modelyard.types import Usage

if TYPE_CHECKING:
    from modelyard.attempt_types import FailedAttempt
    from modelyard.catalog.cards import ModelCard
    from modelyard.embed.request import EmbeddingInputs, EmbeddingRequest

# A vector: 'f' (float32, as base64 and local encoders give them) or 'd' (JSON
# floats, kept as the upstream wrote them). `array` is generic only for type checkers
# before Python 3.12.
if TYPE_CHECKING:
    Vector: TypeAlias = array[float]
else:
    Vector = array

_SWAP = sys.byteorder != "little"


def from_base64(text: str) -> Vector:
    """OpenAI's base64 embedding: little-endian float32. Raises ValueError if it is not."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError(f"{len(raw)} bytes is not a whole number of float32 values")
    vector = array("f")
    vector.frombytes(raw)
    if _SWAP:
        vector.byteswap()
    return vector


def to_base64(vector: Vector) -> str:
    """`vector` as OpenAI's base64 embedding (little-endian float32)."""
    as_f32 = vector if vector.typecode == "f" else array("f", vector)
    if _SWAP:
        as_f32 = array("f", as_f32)
        as_f32.byteswap()
    return base64.b64encode(as_f32.tobytes()).decode("ascii")


def from_floats(values: Sequence[float]) -> Vector:
    """JSON floats as a vector (raises TypeError for anything but numbers)."""
    return array("d", values)


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """One provider call's vectors, in input order, and the tokens it read."""

    vectors: tuple[Vector, ...]
    # None: the provider reported no token count (the attempt bills an estimate).
    usage: Usage | None
    model: str


@dataclass(frozen=True, slots=True)
class EmbeddingOutcome:
    """A served embeddings request: the vectors, who made them, what it cost."""

    result: EmbeddingResult
    card: ModelCard
    cost_usd: Decimal
    failed: tuple[FailedAttempt, ...]


@runtime_checkable
class EmbeddingsProvider(Protocol):
    """A deployment that turns inputs into vectors."""

    async def embed(
        self,
        request: EmbeddingRequest,
        inputs: EmbeddingInputs,
        upstream_model: str,
        *,
        dimensions: int | None,
    ) -> EmbeddingResult:
        """Embed `inputs` with `upstream_model`. `dimensions` is the output size to ask
        the model for, or None to get its own (a fixed-size model is never sent one).

        Raises a `modelyard.errors.ProviderError` subclass on any failure."""
        ...
