"""What both fake upstreams share: strict request checks against the SDKs' own
request types, deterministic answers and token counts.

The SDKs describe request bodies as TypedDicts. Pydantic validates their
`Iterable` fields lazily and silently drops unknown keys, so `request_problem`
materialises the validated value (forcing nested validation) and compares it
with the input: any dropped or coerced key shows up as a difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

WireFormat = Literal["openai", "anthropic", "gemini"]

# Anthropic API version 2023-06-01 (the one modelyard pins) accepts sampling
# parameters that the installed SDK, written for a later version, no longer names.
_ANTHROPIC_EXTRA_KEYS = frozenset({"temperature", "top_p", "top_k"})


@cache
def _adapter(fmt: Literal["openai", "anthropic"], stream: bool) -> TypeAdapter[Any]:
    # Building these adapters takes seconds, so each is built once, on first use.
    if fmt == "openai":
        from openai.types.chat import completion_create_params as oa

        params: Any = (
            oa.CompletionCreateParamsStreaming if stream else oa.CompletionCreateParamsNonStreaming
        )
    else:
        from anthropic.types import message_create_params as an

        params = an.MessageCreateParamsStreaming if stream else an.MessageCreateParamsNonStreaming
    return TypeAdapter(params)


def materialize(value: Any, path: str = "") -> Any:
    """`value` with every lazily validated iterator turned into a list, recursively.

    Raises `ValueError` naming the path of the first item that fails validation.
    """
    if isinstance(value, dict):
        return {k: materialize(v, _join(path, k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [materialize(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Iterator):
        items: list[Any] = []
        while True:
            here = f"{path}[{len(items)}]"
            try:
                item = next(value)
            except StopIteration:
                return items
            except ValidationError as exc:
                raise ValueError(_describe(exc, here)) from None
            items.append(materialize(item, here))
    return value


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(exc: ValidationError, path: str = "") -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    # A lazily validated item's location starts with its index, which `path` already has.
    loc = (
        first["loc"][1:]
        if path and first["loc"] and isinstance(first["loc"][0], int)
        else first["loc"]
    )
    where = path
    for part in loc:
        where = _join(where, part)
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where or 'body'}: {first['msg']}{more}"


def _first_difference(given: Any, checked: Any, path: str = "") -> str:
    if isinstance(given, dict) and isinstance(checked, dict):
        for key in given:
            if key not in checked:
                return f"{_join(path, key)}: unknown field"
            if given[key] != checked[key]:
                return _first_difference(given[key], checked[key], _join(path, key))
    if isinstance(given, list) and isinstance(checked, list) and len(given) == len(checked):
        for i, (a, b) in enumerate(zip(given, checked, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{i}]")
    return f"{path or 'body'}: not valid as sent ({json.dumps(given, default=str)[:200]})"


def request_problem(fmt: Literal["openai", "anthropic"], body: Any) -> str | None:
    """Why `body` is not a request the official `fmt` SDK types accept exactly, or None."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    stream = body.get("stream") is True
    checked = dict(body)
    if fmt == "anthropic":
        checked = {k: v for k, v in body.items() if k not in _ANTHROPIC_EXTRA_KEYS}
    try:
        validated = materialize(_adapter(fmt, stream).validate_python(checked))
    except ValidationError as exc:
        return _describe(exc)
    except ValueError as exc:
        return str(exc)
    if validated != checked:
        return _first_difference(checked, validated)
    return None


def count_tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: about four characters per token."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return max(1, len(text) // 4)


def example_from_schema(schema: Any, name: str = "") -> Any:
    """A value that satisfies a simple JSON schema; strings are `"Paris"`."""
    if not isinstance(schema, Mapping):
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        return {key: example_from_schema(sub, key) for key, sub in props.items()}
    simple: dict[str, Any] = {"integer": 1, "number": 1.5, "boolean": True, "null": None}
    if kind == "array":
        return [example_from_schema(schema.get("items"), name)]
    return simple.get(kind, "Paris")


def split_text(text: str, pieces: int = 3) -> list[str]:
    """`text` cut into at most `pieces` non-empty parts that join back to it."""
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def echo(text: str) -> str:
    """The default answer to a plain text request."""
    return f"echo: {text}"


def after_tool(result: str) -> str:
    """The answer once a tool result came back and no tool call is forced."""
    return f"tool said: {result}"


def text_of(content: Any) -> str:
    """The text of string content or of a list of `{"type": "text"}` parts/blocks."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return " ".join(p.get("text", "") for p in parts if p.get("type") == "text")
