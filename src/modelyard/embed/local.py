"""The `local-encoder` adapter: a sentence encoder from `modelyard.embeddings`, run in
this process, served as an embeddings model. Private (the text never leaves the
machine) and free per token; the built-in stack serves all-MiniLM-L6-v2 with it
(384 dimensions, float graph: the same vectors as sentence-transformers).

The card's upstream name is the encoder's registry name (`minilm-l6-v2-fp32`,
`minilm-l6-v2`, `hashing-<dim>`; see `modelyard.embeddings.registry`). The encoder
is opened on the first request (building its ONNX graph once per machine), and
encoding runs in a worker thread so the event loop keeps serving. Like
sentence-transformers, an input longer than the encoder reads (256 tokens for
MiniLM) is embedded from its start; the router already keeps inputs whose estimate
is longer than the card's `context_window` away from it.
"""

from __future__ import annotations

from array import array
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, NoReturn

import anyio
import httpx

from modelyard.embed.request import EmbeddingInputs, EmbeddingRequest
from modelyard.embed.result import EmbeddingResult, Vector
from modelyard.errors import ModelyardError, ProviderServerError, UpstreamRequestError
from modelyard.providers.base import DeploymentSettings
from modelyard.types import ChatRequest, Chunk, Completion, Usage

if TYPE_CHECKING:  # NumPy and ONNX Runtime load with the encoder, not at start-up
    from modelyard.embeddings.cache import CachedEncoder

ADAPTER = "local-encoder"


class LocalEncoderAdapter:
    """An `EmbeddingsProvider` over an in-process encoder; it answers no chat."""

    # In process: an interrupted call has done its work (and cost) already.
    remote = False

    def __init__(self, settings: DeploymentSettings, client: httpx.AsyncClient) -> None:
        self.name = settings.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def embed(
        self,
        request: EmbeddingRequest,
        inputs: EmbeddingInputs,
        upstream_model: str,
        *,
        dimensions: int | None,
    ) -> EmbeddingResult:
        """Encode the texts in a worker thread; token ids are refused (they belong to
        another tokenizer's vocabulary)."""
        if inputs.token_ids:
            raise UpstreamRequestError(
                f"{self.name}: the local encoder takes text, not token ids", provider=self.name
            )
        return await anyio.to_thread.run_sync(self._encode, list(inputs.texts), upstream_model)

    def _encode(self, texts: list[str], encoder_name: str) -> EmbeddingResult:
        encoder = self._encoder(encoder_name)
        matrix = encoder.encode(texts).astype("<f4", copy=False)
        vectors: list[Vector] = []
        for row in matrix:
            vector = array("f")
            vector.frombytes(row.tobytes())
            vectors.append(vector)
        limit = encoder.max_tokens
        read = [min(n, limit) if limit else n for n in encoder.token_lengths(texts)]
        return EmbeddingResult(tuple(vectors), Usage(input_tokens=sum(read)), encoder_name)

    def _encoder(self, name: str) -> CachedEncoder:
        try:
            from modelyard.embeddings.registry import load_encoder

            return load_encoder(name)
        except ImportError as exc:
            raise ProviderServerError(
                f"{self.name}: the local encoder needs the learned extra "
                f"(pip install 'modelyard[learned]'): {exc}",
                provider=self.name,
            ) from exc
        except ModelyardError as exc:
            raise ProviderServerError(
                f"{self.name}: encoder '{name}' cannot be opened: {exc.message}",
                provider=self.name,
            ) from exc

    async def complete(self, request: ChatRequest, upstream_model: str) -> Completion:
        self._no_chat()

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncIterator[Chunk]:
        self._no_chat()
        yield Chunk()  # pragma: no cover - makes this an async generator

    def _no_chat(self) -> NoReturn:
        # The filter never routes chat to an embeddings card; a plugin policy that
        # bypassed it gets a clear error rather than an AttributeError.
        raise ProviderServerError(f"{self.name}: an embeddings model answers no chat")
