"""ChatRequest → Gemini generateContent body, and JSON Schema → Gemini Schema."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from modelyard.errors import InvalidRequestError
from modelyard.providers.gemini_schema import to_gemini_schema
from modelyard.providers.gemini_wire import build_body
from modelyard.testing.upstream_gemini import request_problem
from modelyard.types import ChatRequest

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
    "hQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def body_for(**kw: Any) -> dict[str, Any]:
    body = build_body(ChatRequest(**kw))
    # Every body we build must be one Gemini (as the SDK's types describe it) accepts.
    assert request_problem(body) is None
    return body


def test_system_and_roles() -> None:
    body = body_for(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Salut"},
            {"role": "user", "content": [{"type": "text", "text": "Again"}]},
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nAnswer in French."}]}
    assert [(c["role"], c["parts"]) for c in body["contents"]] == [
        ("user", [{"text": "Hi"}]),
        ("model", [{"text": "Salut"}]),
        ("user", [{"text": "Again"}]),
    ]


def test_images_inline_and_by_url() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg?size=2"}},
    ]
    parts = body_for(messages=[{"role": "user", "content": content}])["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    assert parts[2] == {
        "fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg?size=2"}
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/image",
        "data:image/png,notbase64",
        "data:image/bmp;base64,AAAA",
        "ftp://x",
    ],
)
def test_unusable_images_are_clear_errors(url: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(InvalidRequestError, match="Gemini") as caught:
        build_body(ChatRequest(messages=[{"role": "user", "content": content}]))
    assert caught.value.param == "messages[0].content"


def test_tools_calls_and_results_pair_by_id_to_name() -> None:
    call = {"id": "call_abc", "type": "function"}
    call["function"] = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    other = {"id": "call_def", "type": "function", "function": {"name": "t2", "arguments": ""}}
    body = body_for(
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call, other]},
            {"role": "tool", "tool_call_id": "call_def", "content": "plain text"},
            {"role": "tool", "tool_call_id": "call_abc", "content": '{"temp": 21}'},
        ],
        tools=[WEATHER, {"type": "function", "function": {"name": "t2"}}],
        tool_choice="required",
    )
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "t2", "args": {}}},
        ],
    }
    # Parallel results share one user turn; names come from the calls' ids.
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "t2", "response": {"output": "plain text"}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
        ],
    }
    declarations = body["tools"][0]["functionDeclarations"]
    assert declarations[0]["parameters"] == {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER", "nullable": True}},
        "propertyOrdering": ["city", "days"],
        "required": ["city"],
    }
    assert declarations[1] == {"name": "t2"}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice_maps_to_function_calling_config(choice: Any, config: dict[str, Any]) -> None:
    messages = [{"role": "user", "content": "x"}]
    body = body_for(messages=messages, tools=[WEATHER], tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_tool_result_without_its_call_is_a_clear_error() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "call_nowhere", "content": "42"},
    ]
    with pytest.raises(InvalidRequestError, match=r"call_nowhere.*matches no tool call"):
        build_body(ChatRequest(messages=messages))


def test_unparseable_call_arguments_are_a_clear_error() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
    with pytest.raises(InvalidRequestError, match="not a JSON object"):
        build_body(ChatRequest(messages=messages))


def test_only_system_text_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="at least one user"):
        build_body(ChatRequest(messages=[{"role": "system", "content": "x"}]))


def test_generation_config() -> None:
    body = body_for(
        messages=[{"role": "user", "content": "x"}],
        temperature=1.5,
        top_p=0.9,
        max_completion_tokens=256,
        stop=["END"],
        seed=7,
        logit_bias={"1": 2},  # no Gemini equivalent: dropped, not sent
    )
    assert body["generationConfig"] == {
        "candidateCount": 1,
        "temperature": 1.5,
        "topP": 0.9,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "seed": 7,
    }


def test_json_schema_response_format_becomes_response_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"$ref": "#/$defs/Answer"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "mood": {"enum": ["happy", "sad"]},
            "email": {"type": "string", "format": "email"},
        },
        "required": ["answer"],
        "additionalProperties": False,
        "$defs": {"Answer": {"type": "string", "description": "the answer"}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}
    config = body_for(messages=[{"role": "user", "content": "x"}], response_format=fmt)[
        "generationConfig"
    ]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "OBJECT",
        "properties": {
            "answer": {"type": "STRING", "description": "the answer"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "1"},
            "mood": {"enum": ["happy", "sad"], "type": "STRING"},
            "email": {"type": "STRING"},
        },
        "propertyOrdering": ["answer", "tags", "mood", "email"],
        "required": ["answer"],
    }
    types.Schema.model_validate(config["responseSchema"])  # the SDK's own Schema type


def test_json_object_mode_sets_the_mime_type_only() -> None:
    fmt = {"type": "json_object"}
    config = body_for(messages=[{"role": "user", "content": "x"}], response_format=fmt)
    assert config["generationConfig"]["responseMimeType"] == "application/json"
    assert "responseSchema" not in config["generationConfig"]


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "object", "allOf": [{}]}, "unsupported keyword `allOf`"),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "additionalProperties"),
        ({"type": ["string", "integer"]}, "one type"),
        ({"enum": [1, 2]}, "enum of non-string"),
        ({"$ref": "https://example.com/s.json"}, "non-local"),
        ({"$ref": "#/$defs/Node", "$defs": {"Node": {"$ref": "#/$defs/Node"}}}, "deeply"),
        ({"type": "object", "patternProperties": {"^x": {}}}, "patternProperties"),
    ],
)
def test_schemas_outside_gemini_subset_are_rejected_by_name(
    schema: dict[str, Any], why: str
) -> None:
    with pytest.raises(InvalidRequestError, match="Gemini") as caught:
        to_gemini_schema(schema, param="response_format.json_schema.schema")
    assert why in caught.value.message
    assert caught.value.param == "response_format.json_schema.schema"


@pytest.mark.parametrize(("effort", "budget"), [("none", 0), ("low", 1024), ("high", 24576)])
def test_reasoning_effort_becomes_a_thinking_budget(effort: str, budget: int) -> None:
    body = body_for(messages=[{"role": "user", "content": "x"}], reasoning_effort=effort)
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": budget}


def test_unknown_reasoning_effort_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="reasoning_effort") as caught:
        build_body(ChatRequest(messages=[{"role": "user", "content": "x"}], reasoning_effort="max"))
    assert caught.value.param == "reasoning_effort"
