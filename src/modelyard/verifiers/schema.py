"""The `schema` verifier: the answer parses and validates against the request's schema.

    verifier: {type: schema}

What is checked is what the request asked for: with a `json_schema` response format,
the answer's JSON against that schema; with `json_object`, that the answer is a JSON
object; with tools, each tool call's arguments against its function's `parameters`
(and that the function exists). A request with none of these has nothing to check,
and the answer is accepted (`accept_unconstrained: false` rejects it instead). Schemas
are checked with `jsonschema` (Draft 2020-12 unless the schema names its own).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, ClassVar, Literal

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError

from modelyard.types import ChatRequest
from modelyard.verifiers.base import Answer, Verdict, VerifierSettings, VerifyContext
from modelyard.verifiers.extract import parse_json


class SchemaVerifier:
    """Accept an answer that satisfies the request's JSON schema or tool schemas."""

    name: ClassVar[str] = "schema"

    class Settings(VerifierSettings):
        type: Literal["schema"] = "schema"
        accept_unconstrained: bool = True

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or self.Settings()

    async def verify(self, ctx: VerifyContext) -> Verdict:
        problems: list[str] = []
        for i, answer in enumerate(ctx.answers):
            problem = check(ctx.request, answer)
            if problem is None:
                return Verdict(True, 1.0, f"{answer.model_id}: valid", chosen=i)
            if problem == _UNCONSTRAINED:
                ok = self.settings.accept_unconstrained
                return Verdict(ok, 1.0 if ok else 0.0, "the request has no schema to check")
            problems.append(f"{answer.model_id}: {problem}")
        return Verdict(False, 0.0, "; ".join(problems) or "no answer to check")


_UNCONSTRAINED = "unconstrained"


def check(request: ChatRequest, answer: Answer) -> str | None:
    """None when `answer` satisfies what `request` constrains, else what is wrong."""
    completion = answer.completion
    if request.tools and completion.tool_calls:
        return _check_tool_calls(request, answer)
    fmt = request.response_format
    if fmt is not None and fmt.type in ("json_schema", "json_object"):
        try:
            document = parse_json(completion.content or "")
        except ValueError:
            return "the answer is not JSON"
        if fmt.type == "json_object" or fmt.json_schema is None or not fmt.json_schema.schema_:
            return None if isinstance(document, dict) else "the answer is not a JSON object"
        return _validate(fmt.json_schema.schema_, document)
    if request.tools and request.tool_choice not in (None, "none", "auto"):
        return "a tool call was required, and the answer has none"
    return _UNCONSTRAINED


def _check_tool_calls(request: ChatRequest, answer: Answer) -> str | None:
    functions = {t.function.name: t.function.parameters for t in request.tools or []}
    for call in answer.completion.tool_calls:
        name = call.function.name
        if name not in functions:
            return f"called unknown tool '{name}'"
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            return f"the arguments of '{name}' are not JSON"
        parameters = functions[name]
        if parameters and (problem := _validate(parameters, arguments)) is not None:
            return f"'{name}': {problem}"
    return None


def _validate(schema: dict[str, Any], document: Any) -> str | None:
    try:
        _validator(json.dumps(schema, sort_keys=True)).validate(document)
    except ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return f"schema violation at {where}: {exc.message}"
    except SchemaError as exc:
        return f"the request's schema is invalid: {exc.message}"
    return None


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Any:
    """One compiled validator per distinct schema: compiling costs more than validating."""
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)
