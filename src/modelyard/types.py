"""Value objects that travel along the one request path.

The request side mirrors the OpenAI chat-completions wire format, because that is
the lingua franca every client already speaks; wire adapters translate it to other
APIs (Anthropic Messages, ...). The response side (`Completion`, `Chunk`, `Usage`) is
provider-neutral and rendered back to OpenAI JSON by the server.

Token convention: `Usage.input_tokens` counts *all* prompt tokens, cached ones
included (OpenAI's `prompt_tokens` convention); `cached_input_tokens` is the subset
read from a provider's prompt cache. Adapters for APIs that count differently
(Anthropic reports cache reads apart from `input_tokens`) normalise to this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

Money = Decimal


def money_text(value: Decimal) -> str:
    """A cost as plain decimal text: `0` rather than `0E-9`, `0.00000012` rather
    than `1.2E-7` (what `str` gives for a quantized zero or a tiny amount)."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


"""US dollars. Never a float."""


class Capability(StrEnum):
    """What a model can do; requests require some of these, cards declare them."""

    TEXT = "text"
    VISION = "vision"
    AUDIO = "audio"
    TOOLS = "tools"
    JSON_SCHEMA = "json_schema"
    JSON_MODE = "json_mode"
    STREAMING = "streaming"
    LONG_CONTEXT = "long_context"
    # Serves `/v1/embeddings` (and nothing else): see `modelyard.embed`.
    EMBEDDINGS = "embeddings"


class DataClass(StrEnum):
    """How sensitive a request's data is; `confidential` may only reach private deployments."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"


# ---------------------------------------------------------------------------
# Request (OpenAI chat-completions shape)
# ---------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class ImageUrl(_Wire):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Wire):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(_Wire):
    data: str
    format: str


class AudioPart(_Wire):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | ImagePart | AudioPart, Field(discriminator="type")]


class FunctionCall(_Wire):
    name: str
    arguments: str


class ToolCall(_Wire):
    """A tool call the model made (OpenAI shape: `arguments` is a JSON string)."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Wire):
    """One chat message. `content` may be text or a list of typed parts."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text, parts joined; non-text parts contribute nothing."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def has_part(self, kind: type[BaseModel]) -> bool:
        return isinstance(self.content, list) and any(isinstance(p, kind) for p in self.content)


class FunctionDef(_Wire):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Wire):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(_Wire):
    name: str


class NamedToolChoice(_Wire):
    type: Literal["function"] = "function"
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaSpec(_Wire):
    name: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Wire):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(_Wire):
    include_usage: bool = False


class RoutingHints(_Wire):
    """Explicit routing hints, from the body's `modelyard` object or `x-modelyard-*` headers."""

    capabilities: list[Capability] = Field(default_factory=list)
    max_cost_usd: Decimal | None = Field(default=None, ge=0)
    max_latency_ms: int | None = Field(default=None, gt=0)
    data_class: DataClass | None = None
    task: str | None = None
    policy: str | None = None
    # The response cache, per request: `no-cache` skips reading it (the fresh answer
    # replaces the entry), `no-store` skips it entirely; also `Cache-Control` headers.
    cache: Literal["default", "no-cache", "no-store"] | None = None


class Routed(Protocol):
    """What the router reads to resolve a request's `model` (chat or embeddings)."""

    @property
    def model(self) -> str: ...

    @property
    def modelyard(self) -> RoutingHints: ...


class ChatRequest(BaseModel):
    """An OpenAI chat-completions request plus modelyard's routing hints.

    Unknown top-level OpenAI parameters (`seed`, `logit_bias`, ...) are kept and
    passed through to OpenAI-compatible upstreams.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    model: str = "auto"
    messages: list[Message]
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    modelyard: RoutingHints = Field(default_factory=RoutingHints)

    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: list[Message]) -> list[Message]:
        if not messages:
            raise ValueError("messages must contain at least one message")
        return messages

    @property
    def output_limit(self) -> int | None:
        """The caller's cap on output tokens, whichever spelling they used."""
        return self.max_completion_tokens or self.max_tokens

    def passthrough(self) -> dict[str, Any]:
        """Extra OpenAI parameters this model does not name, to forward verbatim."""
        return dict(self.model_extra or {})


# ---------------------------------------------------------------------------
# Response
# ---------------------------------------------------------------------------

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one provider call consumed (see the module docstring for the convention)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    # The price the provider itself put on the call (a replayed dataset's recorded
    # cost, a box's fixed cost per call). When set it is billed as is, instead of
    # tokens x the card's list prices.
    cost_usd: Decimal | None = None

    def __add__(self, other: Usage) -> Usage:
        both = self.cost_usd is not None and other.cost_usd is not None
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            (self.cost_usd or Decimal(0)) + (other.cost_usd or Decimal(0)) if both else None,
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished, non-streamed answer from one provider call."""

    id: str
    model: str
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    # A classifier's calibrated confidence in its answer (specialists); None for LLMs.
    confidence: float | None = None
    # The final answer already parsed out of `content` (a replayed dataset's `pred`):
    # the agreement verifier compares it as is instead of running its extractors.
    parsed_answer: str | None = None
    # Which of the caller's stop sequences ended the answer, when the upstream says
    # (Anthropic does; OpenAI-compatible APIs only report `stop`).
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a streamed tool call; `id`/`name` arrive once, `arguments` in pieces."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One streamed increment. The last chunk of a stream carries `usage` when known."""

    content: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    # A classifier's calibrated confidence (specialists), carried to the ledger.
    confidence: float | None = None
    # On the finishing chunk: the stop sequence that ended the answer, when known.
    stop_sequence: str | None = None

    @property
    def has_content(self) -> bool:
        return bool(self.content) or bool(self.tool_calls)


@dataclass(frozen=True, slots=True)
class EmbeddingNeeds:
    """What an embeddings request needs beyond the common requirements: an output
    size (None: the model's own), room for its longest input, and whether its inputs
    are token ids rather than text."""

    dimensions: int | None
    inputs: int
    longest_input_tokens: int
    token_ids: bool = False


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a request needs from a model, inferred from its body and hints.
    `embedding` is set for an embeddings request and None for chat."""

    capabilities: frozenset[Capability]
    prompt_tokens: int
    max_output_tokens: int | None = None
    data_class: DataClass = DataClass.INTERNAL
    max_cost_usd: Money | None = None
    max_latency_ms: int | None = None
    task: str | None = None
    embedding: EmbeddingNeeds | None = None
