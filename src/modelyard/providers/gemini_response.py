"""Gemini API answers and errors → modelyard values, pure, no I/O.

A `GenerateContentResponse` carries `candidates` (modelyard asks for one), each with
`content.parts` (text, `functionCall`, thought summaries marked `thought: true`) and
a `finishReason`; a prompt refused before any generation has no candidates and a
`promptFeedback.blockReason` instead; `usageMetadata` counts the prompt (cached
part included, as `cachedContentTokenCount`), the answer (`candidatesTokenCount`)
and, apart from it, the thinking (`thoughtsTokenCount`), which Gemini bills as
output. The stream (`gemini_stream`) is a sequence of the same objects and shares
these helpers.

Finish reasons sort into what the caller can use: a normal end (`stop`, `length`,
`tool_calls`), a safety stop (`content_filter` when some answer came, else a
`ContentFilteredError`), or an upstream fault (`ProviderResponseError`, retryable:
another try or model may well succeed).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from modelyard.errors import (
    ContentFilteredError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    UpstreamRequestError,
)
from modelyard.providers.http import error_for_status
from modelyard.types import Completion, FinishReason, FunctionCall, ToolCall, Usage

FinishKind = Literal["stop", "length", "filter", "fault", "request"]

_FINISH: dict[str, FinishKind] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "filter",
    "RECITATION": "filter",
    "BLOCKLIST": "filter",
    "PROHIBITED_CONTENT": "filter",
    "SPII": "filter",
    "IMAGE_SAFETY": "filter",
    "IMAGE_PROHIBITED_CONTENT": "filter",
    "IMAGE_RECITATION": "filter",
    "MODEL_ARMOR": "filter",
    "MALFORMED_FUNCTION_CALL": "fault",
    "UNEXPECTED_TOOL_CALL": "fault",
    "TOO_MANY_TOOL_CALLS": "fault",
    "MALFORMED_RESPONSE": "fault",
    # The request itself cannot be answered: another try would fail the same way.
    "LANGUAGE": "request",
    "MISSING_THOUGHT_SIGNATURE": "request",
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


class MalformedError(ValueError):
    """An upstream body is not what Gemini documents; becomes ProviderResponseError."""


def response_error(provider: str, message: str) -> ProviderResponseError:
    """The retryable error for an answer that breaks the documented shape."""
    return ProviderResponseError(f"{provider}: {message}", provider=provider)


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedError(f"usageMetadata.{key} is not a token count")
    return value


def usage_from(metadata: object) -> Usage:
    """modelyard usage from `usageMetadata`: thinking tokens are billed as output,
    tool-use prompt tokens as input; the cached part is a subset of the prompt."""
    if metadata is None:
        return Usage()
    if not isinstance(metadata, Mapping):
        raise MalformedError("usageMetadata is not an object")
    return Usage(
        input_tokens=_int(metadata, "promptTokenCount") + _int(metadata, "toolUsePromptTokenCount"),
        output_tokens=_int(metadata, "candidatesTokenCount") + _int(metadata, "thoughtsTokenCount"),
        cached_input_tokens=_int(metadata, "cachedContentTokenCount"),
    )


def check_prompt_feedback(body: Mapping[str, Any], provider: str) -> None:
    """Raise `ContentFilteredError` when Gemini refused the prompt itself."""
    feedback = body.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
    if reason:
        raise ContentFilteredError(
            f"{provider}: Gemini blocked the prompt (promptFeedback.blockReason {reason})"
            f"{_categories(feedback)}; rephrase it or route it to another model",
            provider=provider,
        )


def _categories(holder: object) -> str:
    ratings = holder.get("safetyRatings") if isinstance(holder, Mapping) else None
    flagged = sorted(
        {
            str(r.get("category"))
            for r in ratings or ()
            if isinstance(r, Mapping)
            and (r.get("blocked") or r.get("probability") in ("MEDIUM", "HIGH"))
        }
    )
    return f" for {', '.join(flagged)}" if flagged else ""


def the_candidate(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The one candidate (None when a stream chunk carries only usage)."""
    candidates = body.get("candidates")
    if candidates is None:
        return None
    if not isinstance(candidates, list) or not all(isinstance(c, Mapping) for c in candidates):
        raise MalformedError("`candidates` is not a list of objects")
    return candidates[0] if candidates else None


def finish_error(
    reason: str, candidate: Mapping[str, Any], provider: str, *, after_output: bool
) -> ProviderError | None:
    """The error a finish reason stands for, or None for a normal end. A safety stop
    after output the caller can keep is no error (`content_filter`) for a whole
    answer; a stream that already sent text raises it instead (`after_output`).
    `OTHER` and reasons added later end a usable answer, but with nothing said they
    are a fault."""
    kind = _FINISH.get(reason, "stop" if after_output or reason == "STOP" else "fault")
    where = " after partial output" if after_output else ""
    if kind == "filter":
        return ContentFilteredError(
            f"{provider}: Gemini stopped the answer{where} (finishReason {reason})"
            f"{_categories(candidate)}",
            provider=provider,
        )
    if kind == "fault":
        message = candidate.get("finishMessage")
        detail = f": {message}" if isinstance(message, str) and message else ""
        return response_error(provider, f"Gemini ended with finishReason {reason}{detail}")
    if kind == "request":
        return UpstreamRequestError(
            f"{provider}: Gemini cannot answer this request (finishReason {reason})",
            provider=provider,
        )
    return None


@dataclass
class Parts:
    """What a candidate's parts said: text pieces and whole function calls."""

    texts: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)


def read_parts(candidate: Mapping[str, Any], response_id: str, first_call: int) -> Parts:
    """Text (thought summaries skipped) and function calls, in order. A call without
    Gemini's own `id` gets one derived from the response id and its ordinal."""
    out = Parts()
    content = candidate.get("content")
    if content is None:
        return out
    if not isinstance(content, Mapping) or not isinstance(content.get("parts", []), list):
        raise MalformedError("candidate content is not an object with a parts list")
    for part in content.get("parts", []):
        if not isinstance(part, Mapping):
            raise MalformedError("a part is not an object")
        if "functionCall" in part:
            out.calls.append(
                _tool_call(part["functionCall"], response_id, first_call + len(out.calls))
            )
        elif isinstance(part.get("text"), str) and not part.get("thought"):
            out.texts.append(part["text"])
    return out


def _tool_call(call: object, response_id: str, ordinal: int) -> ToolCall:
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
        raise MalformedError("functionCall has no name")
    args = call.get("args", {})
    if not isinstance(args, Mapping):
        raise MalformedError("functionCall.args is not an object")
    given = call.get("id")
    call_id = given if isinstance(given, str) and given else f"call_{response_id}_{ordinal}"
    arguments = json.dumps(args, ensure_ascii=False)
    return ToolCall(id=call_id, function=FunctionCall(name=call["name"], arguments=arguments))


def response_id(body: Mapping[str, Any]) -> str:
    """Gemini's `responseId`, or a fresh one for an answer without."""
    given = body.get("responseId")
    return given if isinstance(given, str) and given else uuid.uuid4().hex


def parse_response(body: object, upstream_model: str, provider: str) -> Completion:
    """Translate a whole `GenerateContentResponse` into a `Completion`.

    Raises `ContentFilteredError` for a blocked prompt or a blocked, empty answer;
    `ProviderResponseError` for an empty candidate list, a malformed body or a
    fault finish reason; `UpstreamRequestError` for a finish the request caused.
    """
    try:
        return _parse(body, upstream_model, provider)
    except MalformedError as exc:
        raise response_error(provider, f"malformed Gemini response: {exc}") from exc


def _parse(body: object, upstream_model: str, provider: str) -> Completion:
    if not isinstance(body, Mapping):
        raise MalformedError("body is not a JSON object")
    check_prompt_feedback(body, provider)
    candidate = the_candidate(body)
    if candidate is None:
        raise response_error(provider, "Gemini returned no candidates")
    rid = response_id(body)
    parts = read_parts(candidate, rid, 0)
    reason = str(candidate.get("finishReason") or "STOP")
    has_output = bool("".join(parts.texts)) or bool(parts.calls)
    error = finish_error(reason, candidate, provider, after_output=has_output)
    if error is not None and not (isinstance(error, ContentFilteredError) and has_output):
        raise error
    version = body.get("modelVersion")
    return Completion(
        id=rid,
        model=version if isinstance(version, str) and version else upstream_model,
        content="".join(parts.texts) if parts.texts or not parts.calls else None,
        tool_calls=tuple(parts.calls),
        finish_reason=finish_reason(reason, bool(parts.calls)),
        usage=usage_from(body.get("usageMetadata")),
    )


def finish_reason(reason: str, has_calls: bool) -> FinishReason:
    """The OpenAI finish reason for a Gemini one that is not an error. Gemini ends a
    function-calling turn with STOP; OpenAI callers expect `tool_calls`."""
    kind = _FINISH.get(reason, "stop")
    if kind == "filter":
        return "content_filter"
    if kind == "length":
        return "length"
    return "tool_calls" if has_calls else "stop"


# --- Errors ---


def error_from_body(
    status: int, text: str, provider: str, headers: httpx.Headers | None = None
) -> ProviderError:
    """The modelyard error for a Gemini error body (`{"error": {"code", "message",
    "status", "details"}}`, also sent as a one-element list by streaming calls)."""
    try:
        payload: object = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if not isinstance(error, Mapping):
        excerpt = text.strip()[:500] or f"HTTP {status} without an error message"
        return error_for_status(status, excerpt, provider=provider, headers=headers)
    message = str(error.get("message") or f"HTTP {status}")
    rpc_status = str(error.get("status") or "")
    details = [d for d in error.get("details") or () if isinstance(d, Mapping)]
    if rpc_status:
        message = f"{message} ({rpc_status})"
    if any(d.get("reason") == "API_KEY_INVALID" for d in details):
        # Gemini answers a bad key with 400 INVALID_ARGUMENT; it is our key, not the request.
        return ProviderAuthError(
            f"{provider}: {message}", provider=provider, upstream_status=status
        )
    mapped = error_for_status(
        status, message, provider=provider, headers=headers, overloaded=rpc_status == "UNAVAILABLE"
    )
    if isinstance(mapped, ProviderRateLimitError):
        delay = _retry_delay(details)
        if delay is not None:
            mapped.retry_after = delay
    return mapped


def _retry_delay(details: list[Mapping[str, Any]]) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail (`"retryDelay": "37s"`)."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None
