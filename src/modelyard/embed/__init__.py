"""The embeddings endpoint: `POST /v1/embeddings`, routed and billed like chat.

Not to be confused with `modelyard.embeddings`, the sentence-encoder library the
learned router and the specialists use; `embed.local` serves one of its encoders
(all-MiniLM-L6-v2) as a free, private model behind this endpoint.

    EmbeddingRequest ─► Requirements (embeddings, dimensions, data class, tokens)
                     ─► Router (same filter, ceilings, policies) ─► Decision
                     ─► run_embeddings (fallback, budgets, one ledger record per call)
"""

from modelyard.embed.request import (
    MAX_INPUTS,
    EmbeddingInputs,
    EmbeddingRequest,
    check_inputs,
)
from modelyard.embed.result import EmbeddingOutcome, EmbeddingResult, EmbeddingsProvider

__all__ = [
    "MAX_INPUTS",
    "EmbeddingInputs",
    "EmbeddingOutcome",
    "EmbeddingRequest",
    "EmbeddingResult",
    "EmbeddingsProvider",
    "check_inputs",
]
