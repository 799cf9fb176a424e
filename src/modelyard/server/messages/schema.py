"""The Anthropic Messages request, as pydantic models, and readable validation errors.

Top-level fields follow Anthropic's API: unknown ones are refused (as Anthropic
refuses them), documented ones modelyard cannot honour are refused by name, and
hints that change nothing about the answer (`cache_control`, `service_tier`, ...)
are accepted and not forwarded. Inside content blocks, fields modelyard does not
use (`cache_control`, `citations`, ...) are ignored, so a client's prompt-caching
markers never fail a request. Block types are checked by `type`: an unknown one,
or a known one modelyard cannot translate for every upstream (documents, server
tools' results, ...), is a 400 naming the block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelyard.types import RoutingHints


class _Block(BaseModel):
    # Blocks ignore fields modelyard does not use (cache_control, citations, caller).
    model_config = ConfigDict(extra="ignore", frozen=True)


class TextBlock(_Block):
    type: Literal["text"]
    text: str


class Base64Source(_Block):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class UrlSource(_Block):
    type: Literal["url"]
    url: str = Field(pattern=r"^https?://")


class ImageBlock(_Block):
    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]


class ToolUseBlock(_Block):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


ResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(_Block):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ResultPart] | None = None
    is_error: bool = False


class ThinkingBlock(_Block):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(_Block):
    type: Literal["redacted_thinking"]
    data: str


ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]

# Documented block types modelyard refuses: they need Anthropic's own servers (files,
# server tools, containers) or have no equivalent in other providers' APIs.
UNSUPPORTED_BLOCKS: Final = frozenset(
    {
        "document",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
        "tool_reference",
        "browser_state",
    }
)


class InputMessage(_Block):
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


class CustomTool(_Block):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None


class ToolChoiceAuto(_Block):
    type: Literal["auto"]
    disable_parallel_tool_use: bool = False


class ToolChoiceAny(_Block):
    type: Literal["any"]
    disable_parallel_tool_use: bool = False


class ToolChoiceTool(_Block):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool = False


class ToolChoiceNone(_Block):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")
]


class Metadata(_Block):
    user_id: str | None = None


class ThinkingConfig(_Block):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = Field(default=None, ge=0)


class JsonOutputFormat(_Block):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Block):
    format: JsonOutputFormat | None = None
    effort: str | None = None


class CountTokensRequest(BaseModel):
    """`POST /v1/messages/count_tokens`: what the prompt is, no generation settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    messages: list[InputMessage]
    system: str | list[TextBlock] | None = None
    tools: list[CustomTool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
    # Accepted, not forwarded: they change neither the answer nor the routing.
    cache_control: dict[str, Any] | None = None
    speed: str | None = None
    # modelyard's own routing hints (the SDKs' `extra_body`), as on chat completions.
    modelyard: RoutingHints = Field(default_factory=RoutingHints)

    @field_validator("tools", mode="before")
    @classmethod
    def _client_tools_only(cls, tools: Any) -> Any:
        for i, tool in enumerate(tools if isinstance(tools, list) else ()):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind not in (None, "custom"):
                raise ValueError(
                    f"tools.{i}: server tool '{kind}' runs on Anthropic's servers and cannot "
                    "be routed to other models; declare a client tool (name, description, "
                    "input_schema) instead"
                )
        return tools


class MessagesRequest(CountTokensRequest):
    """`POST /v1/messages`."""

    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    # OpenAI-compatible APIs have no top_k: accepted, not forwarded (see README).
    top_k: int | None = Field(default=None, ge=0)
    metadata: Metadata | None = None
    service_tier: str | None = None
    inference_geo: str | None = None


# Fields holding a tagged union, and the tags, which pydantic puts in error locations.
_TAGGED: Final = frozenset({"source", "tool_choice"})
_TAGS: Final = frozenset(
    {"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"}
    | {"base64", "url", "auto", "any", "tool", "none"}
)

# Documented request fields that need Anthropic's own platform (their containers,
# MCP connectors, context editing): refused by name rather than silently dropped.
_PLATFORM_FIELDS: Final = frozenset(
    {"container", "mcp_servers", "context_management", "user_profile_id", "workspace_id"}
)


def describe(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """One sentence for a validation failure, in Anthropic's `path: problem` style, and
    the field it names. One problem is reported, as Anthropic does: the first, skipping
    a union's rejected branches (content that is "not a valid string" because it is a
    list of blocks, one of which is wrong) when a more precise problem exists."""
    precise = [e for e in errors if not (e["loc"] and _is_union_branch(e["loc"][-1]))]
    first = (precise or errors)[0]
    loc = _client_path(tuple(first["loc"]))
    kind = kind_of(first)
    if kind == "json_invalid":
        return "request body is not valid JSON", None
    if not loc:
        what = "missing" if kind == "missing" else first["msg"]
        return f"request body: {what} (send a JSON object)", None
    where = ".".join(str(p) for p in loc)
    if kind == "missing" and len(loc) == 1:
        return f"{where}: Field required", where
    if kind == "extra_forbidden" and len(loc) == 1:
        if loc[0] in _PLATFORM_FIELDS:
            return f"{where}: not supported by modelyard (it needs Anthropic's platform)", where
        return f"{where}: Extra inputs are not permitted", where
    if kind == "union_tag_invalid":
        tag = first.get("ctx", {}).get("tag", "")
        expected = first.get("ctx", {}).get("expected_tags", "")
        if loc and loc[-1] in ("source", "tool_choice"):
            return f"{where}: unknown type '{tag}' (expected one of {expected})", where
        if tag in UNSUPPORTED_BLOCKS:
            return (
                f"{where}: content block type '{tag}' is not supported by modelyard "
                "(supported: text, image, tool_use, tool_result, thinking)",
                where,
            )
        return f"{where}: unknown content block type '{tag}'", where
    if kind == "union_tag_not_found":
        return f"{where}: every content block needs a 'type'", where
    if kind == "value_error":
        return str(first["msg"]).removeprefix("Value error, "), where
    return f"{where}: {first['msg']}", where


def kind_of(error: Mapping[str, Any]) -> str:
    return str(error.get("type", ""))


def _client_path(loc: tuple[int | str, ...]) -> list[int | str]:
    """The location as the client wrote it: without union branch names, and without
    the tag pydantic inserts after a tagged union (`content.0.image.source` is the
    client's `content.0.source`)."""
    # FastAPI puts the body's errors under "body".
    parts = (
        [p for p in loc[1:] if not _is_union_branch(p)]
        if loc[:1] == ("body",)
        else [p for p in loc if not _is_union_branch(p)]
    )
    out: list[int | str] = []
    for i, part in enumerate(parts):
        after = parts[i - 1] if i else None
        tagged = isinstance(after, int) or after in _TAGGED
        if i and tagged and part in _TAGS and i + 1 < len(parts):
            continue
        out.append(part)
    return out


def _is_union_branch(part: object) -> bool:
    # pydantic names the tried branch of `str | list[...]` in the location
    # ("content.list[...].0"), which means nothing to an API client.
    return isinstance(part, str) and ("[" in part or part in ("str", "none"))
