"""The fake's Gemini side: `POST /v1beta/models/{model}:generateContent`, JSON, and
`:streamGenerateContent?alt=sse`, server-sent events, as the Gemini API documents.

Requests are checked like the API checks them: the key in `x-goog-api-key` (a
wrong one is Gemini's 400 `API_KEY_INVALID`, none its 403), only documented
top-level fields, and `contents`, `systemInstruction`, `tools`, `toolConfig` and
`generationConfig` against the google-genai SDK's own types (which forbid unknown
fields and know the upper-case `Type` enum). Answers: a `functionCall` for the
allowed (or first) function when tools are given and calling is not `NONE` (and,
in `AUTO`, the last turn is not a function response); JSON matching
`responseSchema` (or `{"echo": ...}`) when `responseMimeType` is JSON; otherwise
`"echo: <last user text>"`. `FakeUpstream.gemini_thoughts` thinking tokens are
reported on every default answer. The helpers at the end build the bodies of the
refusals a test scripts: a blocked prompt, a safety stop mid-stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response, StreamingResponse

from modelyard.testing.wire import after_tool, count_tokens, echo, example_from_schema, split_text

if TYPE_CHECKING:
    from modelyard.testing.upstream import FakeUpstream, RecordedRequest

RESPONSE_ID = "fake-gemini-0001"
_TOP_LEVEL = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
    | {"safetySettings", "cachedContent"}
)
# The HTTP status and google.rpc status Gemini answers with, per HTTP status.
_RPC_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(
    status: int,
    message: str | None = None,
    *,
    retry_delay_s: float | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Gemini's error envelope: `{"error": {"code", "message", "status", "details"}}`,
    with a `google.rpc.RetryInfo` detail when `retry_delay_s` is given."""
    rpc = _RPC_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    default = "The model is overloaded. Please try again later." if status == 503 else None
    error: dict[str, Any] = {
        "code": status,
        "message": message or default or f"Upstream error {status}.",
        "status": rpc,
    }
    details: list[dict[str, Any]] = []
    if reason is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        )
    if retry_delay_s is not None:
        delay = int(retry_delay_s) if float(retry_delay_s).is_integer() else retry_delay_s
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"}
        )
    if details:
        error["details"] = details
    return {"error": error}


@cache
def _adapters() -> dict[str, TypeAdapter[Any]]:
    from google.genai import types

    return {
        "contents": TypeAdapter(list[types.Content]),
        "systemInstruction": TypeAdapter(types.Content),
        "tools": TypeAdapter(list[types.Tool]),
        "toolConfig": TypeAdapter(types.ToolConfig),
        "generationConfig": TypeAdapter(types.GenerationConfig),
    }


def request_problem(body: Any) -> str | None:
    """Why `body` is not a generateContent request Gemini accepts, or None."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received: the body must be a JSON object."
    unknown = sorted(set(body) - _TOP_LEVEL)
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
    if not body.get("contents"):
        return "* GenerateContentRequest.contents: contents is not specified"
    for key, adapter in _adapters().items():
        if key in body:
            try:
                adapter.validate_python(body[key])
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                return f"Invalid JSON payload received at {key}.{where}: {first['msg']}"
    for n, turn in enumerate(body["contents"]):
        if turn.get("role") not in ("user", "model") or not turn.get("parts"):
            return f"* GenerateContentRequest.contents[{n}]: role user/model and parts required"
    return None


def _last_turn_responses(contents: list[Any]) -> list[Any]:
    return [p["functionResponse"] for p in contents[-1]["parts"] if "functionResponse" in p]


def _last_user_text(contents: list[Any]) -> str:
    for turn in reversed(contents):
        texts = [p["text"] for p in turn["parts"] if "text" in p]
        if turn["role"] == "user" and texts:
            return " ".join(texts)
    return ""


def _lower_types(schema: Any) -> Any:
    """A Gemini schema with JSON Schema's lower-case type names, for `example_from_schema`."""
    if isinstance(schema, Mapping):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def plan_part(body: Mapping[str, Any]) -> dict[str, Any]:
    """The one part the fake answers a (valid) request with."""
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations", [])]
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = config.get("mode", "AUTO")
    responses = _last_turn_responses(body["contents"])
    if declarations and mode != "NONE" and not (responses and mode == "AUTO"):
        allowed = config.get("allowedFunctionNames") or [declarations[0]["name"]]
        fn = next(d for d in declarations if d["name"] in allowed)
        args = example_from_schema(_lower_types(fn.get("parameters", {})))
        return {"functionCall": {"name": fn["name"], "args": args}}
    if responses:
        result = responses[-1]["response"]
        return {"text": after_tool(str(result.get("output", json.dumps(result))))}
    last = _last_user_text(body["contents"])
    generation = body.get("generationConfig") or {}
    if generation.get("responseMimeType") == "application/json":
        schema = generation.get("responseSchema")
        value = example_from_schema(_lower_types(schema)) if schema else {"echo": last}
        return {"text": json.dumps(value)}
    return {"text": echo(last)}


def usage_metadata(
    body: Mapping[str, Any], part: Mapping[str, Any], *, cached: int = 0, thoughts: int = 0
) -> dict[str, Any]:
    """`usageMetadata` for the answer `part`; `promptTokenCount` includes the cached part."""
    prompt = count_tokens(body["contents"]) + count_tokens(body.get("systemInstruction") or "")
    prompt += count_tokens(body.get("tools") or "")
    output = count_tokens(part.get("text") or part.get("functionCall"))
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output + thoughts,
    }
    if cached:
        usage["cachedContentTokenCount"] = min(cached, prompt)
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def response(
    parts: list[dict[str, Any]],
    usage: Mapping[str, Any] | None,
    model: str,
    finish: str | None = "STOP",
) -> dict[str, Any]:
    """One `GenerateContentResponse` (a whole answer, or one event of a stream)."""
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = dict(usage)
    return {**body, "modelVersion": model, "responseId": RESPONSE_ID}


def events(
    part: Mapping[str, Any], usage: Mapping[str, Any], model: str
) -> Iterator[dict[str, Any]]:
    """The stream: text in pieces (a function call whole), usage on every event, the
    finish reason on the last."""
    prompt_only = {"promptTokenCount": usage["promptTokenCount"]}
    if "text" in part:
        pieces = split_text(part["text"])
        for piece in pieces[:-1]:
            yield response([{"text": piece}], prompt_only, model, finish=None)
        yield response([{"text": pieces[-1]}], usage, model)
    else:
        yield response([dict(part)], usage, model)


def sse(stream: Iterator[Mapping[str, Any]]) -> Iterator[str]:
    """Events framed as Gemini frames them (`data: ...` and CRLF CRLF)."""
    for event in stream:
        yield f"data: {json.dumps(event)}\r\n\r\n"


def blocked_prompt(reason: str = "SAFETY", tokens: int = 8) -> dict[str, Any]:
    """The answer to a prompt Gemini refuses: no candidates, `promptFeedback`."""
    rating = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
    return {
        "promptFeedback": {"blockReason": reason, "safetyRatings": [rating]},
        "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens},
        "modelVersion": "gemini-test",
        "responseId": RESPONSE_ID,
    }


def safety_stop_stream(texts: list[str], reason: str = "SAFETY") -> list[str]:
    """A stream that says `texts`, then stops with `reason` and no more text."""
    events_ = [response([{"text": t}], {"promptTokenCount": 8}, "gemini-test", None) for t in texts]
    rating = {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}
    usage = {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20}
    last: dict[str, Any] = {
        "candidates": [{"finishReason": reason, "index": 0, "safetyRatings": [rating]}],
        "usageMetadata": usage,
        "modelVersion": "gemini-test",
        "responseId": RESPONSE_ID,
    }
    return list(sse(iter([*events_, last])))


def _header_error(headers: Headers, key: str | None) -> Response | None:
    given = headers.get("x-goog-api-key")
    if key is None:
        return None
    if not given:
        body = error_body(403, "Method doesn't allow unregistered callers.")
        return JSONResponse(body, status_code=403)
    if given != key:
        body = error_body(400, "API key not valid. Please pass a valid API key.")
        body["error"]["details"] = [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        ]
        return JSONResponse(body, status_code=400)
    return None


def respond(state: FakeUpstream, headers: Headers, body: Any, record: RecordedRequest) -> Response:
    """Answer one generateContent / streamGenerateContent request as Gemini would."""
    if (denied := _header_error(headers, state.gemini_key)) is not None:
        return denied
    if (problem := request_problem(body)) is not None:
        return JSONResponse(error_body(400, problem), status_code=400)
    model, _, method = record.url.split("?", 1)[0].rsplit("/", 1)[-1].partition(":")
    part = plan_part(body)
    usage = usage_metadata(body, part, cached=state.cached_tokens, thoughts=state.gemini_thoughts)
    record.usage = usage
    if method == "streamGenerateContent":
        if "alt=sse" not in record.url:
            # Without alt=sse Gemini streams one JSON array, which this fake does not.
            return JSONResponse(error_body(400, "this fake streams only with alt=sse"), 400)
        return StreamingResponse(sse(events(part, usage, model)), media_type="text/event-stream")
    if method != "generateContent":
        return JSONResponse(error_body(404, f"unknown method {method!r}"), status_code=404)
    return JSONResponse(response([part], usage, model))
