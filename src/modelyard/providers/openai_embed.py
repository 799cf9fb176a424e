"""Pure transforms between modelyard's embeddings types and OpenAI's
`POST /embeddings` wire format (also served by vLLM, Ollama, llama.cpp, TEI,
Together, Mistral, ...). Parsing takes floats or base64, whichever the server sent.
"""

from __future__ import annotations

from typing import Any

from modelyard.embed.request import EmbeddingRequest
from modelyard.embed.result import EmbeddingResult, Vector, from_base64, from_floats
from modelyard.errors import ProviderResponseError
from modelyard.providers.openai_wire import excerpt
from modelyard.types import Usage

# Ours, not the upstream's.
_OWN_FIELDS = frozenset({"modelyard"})


def build_embeddings_body(
    request: EmbeddingRequest, upstream_model: str, *, dimensions: int | None
) -> dict[str, Any]:
    """The JSON body: the caller's input as sent, the upstream's model name, and
    `dimensions` only when the model is to be asked for a size."""
    body: dict[str, Any] = {
        k: v for k, v in request.passthrough().items() if k not in _OWN_FIELDS and v is not None
    }
    body["model"] = upstream_model
    body["input"] = request.input
    if request.encoding_format is not None:
        body["encoding_format"] = request.encoding_format
    if dimensions is not None:
        body["dimensions"] = dimensions
    if request.user is not None:
        body["user"] = request.user
    return body


def parse_embeddings(data: Any, *, expected: int, provider: str) -> EmbeddingResult:
    """An `{"object": "list", "data": [...], "usage": ...}` body as a result: one
    vector per input, in input order (by `index`). Anything else, fewer or more
    vectors, or a vector that is neither numbers nor base64 float32, is a
    `ProviderResponseError` (retryable: the next model may do better).

    `usage` is None when the server reported no `prompt_tokens` (then the caller
    bills an estimate)."""

    def bad(why: str) -> ProviderResponseError:
        return ProviderResponseError(
            f"{provider}: malformed embeddings response: {why}: {excerpt(repr(data))}",
            provider=provider,
        )

    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise bad("no 'data' list")
    if len(items) != expected:
        raise bad(f"{len(items)} vectors for {expected} inputs")
    vectors: list[Vector | None] = [None] * expected
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad(f"data[{position}] is not an object")
        index = item.get("index", position)
        if type(index) is not int or not 0 <= index < expected or vectors[index] is not None:
            raise bad(f"data[{position}] has index {index!r}")
        vectors[index] = _vector(item.get("embedding"), bad, position)
    usage = data.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    model = data.get("model")
    return EmbeddingResult(
        vectors=tuple(v for v in vectors if v is not None),
        usage=Usage(input_tokens=tokens) if type(tokens) is int else None,
        model=model if isinstance(model, str) else "",
    )


def _vector(raw: Any, bad: Any, position: int) -> Vector:
    try:
        if isinstance(raw, str):
            return from_base64(raw)
        if isinstance(raw, list) and raw and not any(isinstance(x, bool) for x in raw):
            return from_floats(raw)
    except (TypeError, ValueError) as exc:
        raise bad(f"data[{position}].embedding: {exc}") from None
    raise bad(f"data[{position}].embedding is not a list of numbers or base64")
