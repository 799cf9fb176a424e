"""Gemini API request body: a `ChatRequest` → `generateContent`'s JSON, pure, no I/O.

System and developer messages become `systemInstruction`; user turns stay `user`
and assistant turns become `model`; images travel as `inlineData` (base64 data
URLs) or `fileData` (http(s) URLs with a recognisable image type); tool calls are
`functionCall` parts and tool results `functionResponse` parts in a `user` turn.
Gemini pairs a response with its call by function *name*, which an OpenAI tool
message does not carry, so each `tool_call_id` is looked up among the earlier
assistant tool calls. The ids themselves are not sent: Gemini's Developer API
issues none of its own for most models, and pairs calls and responses by name and
order. The answer's side is in `gemini_response`; the stream's in `gemini_stream`.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Sequence
from typing import Any

from modelyard.errors import InvalidRequestError
from modelyard.providers.gemini_schema import to_gemini_schema
from modelyard.types import (
    AudioPart,
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
)

_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3", "aiff": "audio/aiff", "aac": "audio/aac"}
_AUDIO_TYPES |= {"ogg": "audio/ogg", "flac": "audio/flac"}
_CHOICE_MODES = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
# OpenAI parameters with an exact generationConfig equivalent; others are dropped,
# as Gemini rejects unknown fields.
_PASSTHROUGH = {
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
# OpenAI's `reasoning_effort` as a thinking budget in tokens: the mapping Google
# documents for its own OpenAI-compatible endpoint ("none" turns thinking off where
# the model allows it).
_THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}


def build_body(request: ChatRequest) -> dict[str, Any]:
    """The `generateContent` / `streamGenerateContent` body for `request` (the model
    and the streaming choice are in the URL, not the body).

    Raises `InvalidRequestError` for what Gemini cannot express: a tool result
    whose call is not in the conversation, an image it cannot fetch, a schema
    outside its subset, a conversation with nothing but system text.
    """
    system, contents = _translate_messages(request.messages)
    if not contents:
        raise InvalidRequestError(
            "Gemini needs at least one user or assistant message besides system text",
            param="messages",
        )
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    _add_tools(body, request)
    body["generationConfig"] = _generation_config(request)
    return body


def _translate_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # OpenAI tool_call_id -> function name
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            system.append(_system_text(message, i))
            continue
        if message.role == "tool":
            role, parts = "user", [_function_response(message, call_names, i)]
        elif message.role == "assistant":
            role, parts = "model", _parts(message.content, i)
            for call in message.tool_calls or ():
                call_names[call.id] = call.function.name
                parts.append(_function_call(call.function.name, call.function.arguments, i))
        else:
            role, parts = "user", _parts(message.content, i)
        if not parts:
            continue  # Gemini rejects a turn without parts; an empty one says nothing.
        if contents and contents[-1]["role"] == role:
            # Parallel tool results must share one turn; other same-role runs merge safely.
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return "\n\n".join(s for s in system if s), contents


def _system_text(message: Message, i: int) -> str:
    if isinstance(message.content, list) and not all(
        isinstance(p, TextPart) for p in message.content
    ):
        raise InvalidRequestError(
            f"messages[{i}]: {message.role} messages may only contain text for Gemini",
            param=f"messages[{i}].content",
        )
    return message.text()


def _parts(content: str | list[ContentPart] | None, i: int) -> list[dict[str, Any]]:
    if not content:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(_image_part(part.image_url.url, i))
        elif isinstance(part, AudioPart):
            parts.append(_audio_part(part, i))
    return parts


def _image_part(url: str, i: int) -> dict[str, Any]:
    if url.startswith("data:"):
        header, sep, data = url[len("data:") :].partition(",")
        media_type, *params = header.split(";")
        media_type = media_type.strip().lower().replace("image/jpg", "image/jpeg")
        if sep and "base64" in params and media_type in _IMAGE_TYPES and data:
            return {"inlineData": {"mimeType": media_type, "data": data}}
    elif url.startswith(("http://", "https://")):
        guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
        if guessed in _IMAGE_TYPES:
            return {"fileData": {"mimeType": guessed, "fileUri": url}}
        raise InvalidRequestError(
            f"messages[{i}]: Gemini needs an image URL's type; {url[:80]!r} does not end in "
            ".png, .jpg, .webp, .heic or .heif: send the image as a base64 data URL",
            param=f"messages[{i}].content",
        )
    raise InvalidRequestError(
        f"messages[{i}]: Gemini takes images as base64 data URLs or http(s) URLs of type "
        f"{', '.join(sorted(_IMAGE_TYPES))}",
        param=f"messages[{i}].content",
    )


def _audio_part(part: AudioPart, i: int) -> dict[str, Any]:
    media_type = _AUDIO_TYPES.get(part.input_audio.format.lower())
    if media_type is None:
        raise InvalidRequestError(
            f"messages[{i}]: Gemini takes audio as {', '.join(sorted(_AUDIO_TYPES))}",
            param=f"messages[{i}].content",
        )
    return {"inlineData": {"mimeType": media_type, "data": part.input_audio.data}}


def _function_call(name: str, arguments: str, i: int) -> dict[str, Any]:
    try:
        args = json.loads(arguments or "{}")  # some clients send "" for no arguments
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"messages[{i}]: tool call {name!r} has arguments that are not a JSON object",
            param=f"messages[{i}].tool_calls",
        )
    return {"functionCall": {"name": name, "args": args}}


def _function_response(message: Message, names: dict[str, str], i: int) -> dict[str, Any]:
    name = names.get(message.tool_call_id or "")
    if name is None:
        raise InvalidRequestError(
            f"messages[{i}]: tool message's tool_call_id {message.tool_call_id!r} matches no "
            "tool call of an earlier assistant message (Gemini needs the function's name)",
            param=f"messages[{i}].tool_call_id",
        )
    text = message.text()
    try:
        value: object = json.loads(text)
    except ValueError:
        value = text
    # `response` must be an object; Gemini documents `output` as the key for a result.
    response = value if isinstance(value, dict) else {"output": value}
    return {"functionResponse": {"name": name, "response": response}}


def _add_tools(body: dict[str, Any], request: ChatRequest) -> None:
    if not request.tools:
        if isinstance(request.tool_choice, NamedToolChoice):
            raise InvalidRequestError("tool_choice names a tool but no tools were given")
        return
    declarations = []
    for n, tool in enumerate(request.tools):
        fn = tool.function
        declaration: dict[str, Any] = {"name": fn.name}
        if fn.description:
            declaration["description"] = fn.description
        # Gemini rejects an OBJECT schema without properties: a function without
        # parameters simply has none.
        if fn.parameters and fn.parameters.get("properties"):
            declaration["parameters"] = to_gemini_schema(
                fn.parameters, param=f"tools[{n}].function.parameters"
            )
        declarations.append(declaration)
    body["tools"] = [{"functionDeclarations": declarations}]
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        config = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    elif choice is not None:
        config = {"mode": _CHOICE_MODES[choice]}
    else:
        return
    body["toolConfig"] = {"functionCallingConfig": config}


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    # One candidate: modelyard answers with one choice (n > 1 is refused up front).
    config: dict[str, Any] = {"candidateCount": 1}
    if request.temperature is not None:
        config["temperature"] = request.temperature  # Gemini's range is 0..2 like OpenAI's
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.output_limit is not None:
        config["maxOutputTokens"] = request.output_limit
    if request.stop:
        config["stopSequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        config["responseMimeType"] = "application/json"
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.json_schema is None:
            raise InvalidRequestError(
                "response_format json_schema needs a json_schema object", param="response_format"
            )
        config["responseMimeType"] = "application/json"
        if fmt.json_schema.schema_:
            config["responseSchema"] = to_gemini_schema(
                fmt.json_schema.schema_, param="response_format.json_schema.schema"
            )
    extras = request.passthrough()
    for key, name in _PASSTHROUGH.items():
        if extras.get(key) is not None:
            config[name] = extras[key]
    effort = extras.get("reasoning_effort")
    if effort is not None:
        if effort not in _THINKING_BUDGETS:
            raise InvalidRequestError(
                f"reasoning_effort must be one of {', '.join(_THINKING_BUDGETS)}",
                param="reasoning_effort",
            )
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGETS[effort]}
    return config
