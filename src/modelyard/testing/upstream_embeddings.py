"""The fake's OpenAI embeddings side: `POST /v1/embeddings`.

Checks what OpenAI checks (the key; the body against the SDK's own
`EmbeddingCreateParams`, unknown keys included; no empty input, at most 2,048
inputs; `dimensions` only for text-embedding-3 models and at most their size) and
answers with deterministic unit vectors: the same model and input give the same
vector, in floats or base64 (little-endian float32), with `usage.prompt_tokens`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from array import array
from typing import TYPE_CHECKING, Any

from openai.types import CreateEmbeddingResponse, Embedding, EmbeddingCreateParams
from openai.types.create_embedding_response import Usage
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from modelyard.testing.upstream_openai import _auth_error, error_body
from modelyard.testing.wire import count_tokens

if TYPE_CHECKING:
    from modelyard.testing.upstream import FakeUpstream, RecordedRequest

# Native sizes; any other model answers with DEFAULT_DIMENSIONS.
NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_DIMENSIONS = 1536
MAX_INPUTS = 2048
_PARAMS: TypeAdapter[Any] = TypeAdapter(EmbeddingCreateParams)
_INVALID_INPUT = "'$.input' is invalid. Please check the API reference."


def _invalid(message: str, param: str | None = None) -> Response:
    return JSONResponse(error_body(message, "invalid_request_error", None, param), 400)


def _inputs(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        return [raw]
    if raw and all(isinstance(x, int) for x in raw):
        return [list(raw)]
    return list(raw)


def _problem(body: Any) -> Response | None:
    if not isinstance(body, dict):
        return _invalid("the request body must be a JSON object")
    unknown = sorted(set(body) - set(EmbeddingCreateParams.__annotations__))
    if unknown:
        return _invalid(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    try:
        _PARAMS.validate_python(body)
    except ValidationError as exc:
        return _invalid(f"Invalid request: {exc.errors(include_url=False)[0]['msg']}")
    inputs = _inputs(body["input"])
    if not inputs or len(inputs) > MAX_INPUTS or any(len(i) == 0 for i in inputs):
        return _invalid(_INVALID_INPUT, "input")
    dims = body.get("dimensions")
    model = str(body["model"])
    if dims is not None:
        if not model.startswith("text-embedding-3"):
            return _invalid("This model does not support specifying dimensions.", "dimensions")
        if not 1 <= dims <= NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS):
            return _invalid(f"Invalid value for 'dimensions' = {dims}.", "dimensions")
    return None


def fake_vector(model: str, item: str | list[int], dimensions: int) -> array[float]:
    """A deterministic unit vector for `item` (float32 values)."""
    seed = hashlib.sha256(f"{model}\x00{item!r}".encode()).digest()
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", (v / norm for v in values))


def respond(state: FakeUpstream, headers: Headers, body: Any, record: RecordedRequest) -> Response:
    """Answer one embeddings request as OpenAI would."""
    if (denied := _auth_error(headers, state.openai_key)) is not None:
        return denied
    if (problem := _problem(body)) is not None:
        return problem
    model = str(body["model"])
    inputs = _inputs(body["input"])
    size = body.get("dimensions") or NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = fake_vector(model, item, size)
        packed = struct.pack(f"<{len(vector)}f", *vector)  # OpenAI: little-endian float32
        shown: Any = base64.b64encode(packed).decode() if as_base64 else vector.tolist()
        data.append(Embedding.model_construct(embedding=shown, index=index, object="embedding"))
    tokens = sum(len(i) if isinstance(i, list) else count_tokens(i) for i in inputs)
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    record.usage = usage.model_dump(mode="json")
    answer = CreateEmbeddingResponse.model_construct(
        data=data, model=model, object="list", usage=usage
    )
    return JSONResponse(answer.model_dump(mode="json", warnings=False))
