"""The embeddings request in OpenAI's wire shape, its inputs checked, and what it
requires of a model.

OpenAI's `input` is a string, an array of strings, an array of token ids or an
array of token-id arrays; at most `MAX_INPUTS` (2,048, OpenAI's own limit) per
request, none of them empty. Those checks happen here, before routing, so a bad
request is a 400 naming the item instead of a round trip to an upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from modelyard.catalog.tokens import count_text
from modelyard.errors import InvalidRequestError
from modelyard.types import (
    Capability,
    DataClass,
    EmbeddingNeeds,
    Requirements,
    RoutingHints,
)

MAX_INPUTS: Final = 2048
"""Inputs per request: OpenAI's limit, so a request that passes here passes there."""

Input = StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]


class EmbeddingRequest(BaseModel):
    """An OpenAI embeddings request plus modelyard's routing hints.

    Unknown top-level parameters are kept and passed through to OpenAI-compatible
    upstreams (some servers take their own, e.g. vLLM's `truncate_prompt_tokens`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    input: Input
    model: str = "auto"
    dimensions: StrictInt | None = Field(default=None, gt=0)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    modelyard: RoutingHints = Field(default_factory=RoutingHints)

    def passthrough(self) -> dict[str, Any]:
        """Extra parameters this model does not name, to forward verbatim."""
        return dict(self.model_extra or {})


@dataclass(frozen=True, slots=True)
class EmbeddingInputs:
    """The request's inputs, one per output vector: texts, or token-id arrays."""

    texts: tuple[str, ...] = ()
    token_ids: tuple[tuple[int, ...], ...] = ()

    def __len__(self) -> int:
        return len(self.texts) + len(self.token_ids)

    def token_counts(self) -> list[int]:
        """Tokens per input: counted with cl100k for text, exact for token ids."""
        if self.token_ids:
            return [len(ids) for ids in self.token_ids]
        return [count_text(text) for text in self.texts]


def check_inputs(request: EmbeddingRequest) -> EmbeddingInputs:
    """The inputs as a list, or a 400 naming the first bad one."""
    raw = request.input
    items: list[Any]
    if isinstance(raw, str) or (raw and all(isinstance(x, int) for x in raw)):
        # One string, or one token-id array: one input, as in OpenAI's API.
        items, names = [raw], ["input"]
    else:
        items, names = list(raw), [f"input[{i}]" for i in range(len(raw))]
    if not items:
        raise InvalidRequestError("input must not be an empty array", param="input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequestError(
            f"input has {len(items)} items; at most {MAX_INPUTS} per request (OpenAI's "
            "limit): split it into several requests",
            param="input",
        )
    for item, name in zip(items, names, strict=True):
        if isinstance(item, str):
            if not item:
                raise InvalidRequestError(
                    f"{name} is an empty string; every input needs text to embed", param="input"
                )
        elif not item:
            raise InvalidRequestError(f"{name} is an empty token array", param="input")
        elif any(i < 0 for i in item):
            raise InvalidRequestError(f"{name} has a negative token id", param="input")
    if isinstance(items[0], str):
        return EmbeddingInputs(texts=tuple(items))
    return EmbeddingInputs(token_ids=tuple(tuple(ids) for ids in items))


def embedding_requirements(request: EmbeddingRequest, inputs: EmbeddingInputs) -> Requirements:
    """What a model must offer to serve `request`: the `embeddings` capability, the
    output size asked for, room for the longest input, and the data class."""
    hints = request.modelyard
    counts = inputs.token_counts()
    return Requirements(
        capabilities=frozenset({Capability.EMBEDDINGS, *hints.capabilities}),
        prompt_tokens=sum(counts),
        data_class=hints.data_class or DataClass.INTERNAL,
        max_cost_usd=hints.max_cost_usd,
        max_latency_ms=hints.max_latency_ms,
        task=hints.task,
        embedding=EmbeddingNeeds(
            dimensions=request.dimensions,
            inputs=len(inputs),
            longest_input_tokens=max(counts),
            token_ids=bool(inputs.token_ids),
        ),
    )
