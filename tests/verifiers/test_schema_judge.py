"""The schema verifier checks what the request constrains; the judge parses a score
from a routed model call."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from modelyard.types import ChatRequest, Completion, FunctionCall, ToolCall
from modelyard.verifiers.base import Answer, JudgeReply, VerifyContext
from modelyard.verifiers.judge import JudgeVerifier, parse_score
from modelyard.verifiers.schema import SchemaVerifier

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def request(**extra: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": "q"}], **extra})


def answer(content: str | None = None, *calls: tuple[str, str]) -> Answer:
    tool_calls = tuple(
        ToolCall(id=f"t{i}", function=FunctionCall(name=n, arguments=a))
        for i, (n, a) in enumerate(calls)
    )
    return Answer("m", 1, Completion(id="c", model="m", content=content, tool_calls=tool_calls))


async def schema_verdict(req: ChatRequest, *given: Answer, **settings: Any) -> Any:
    v = SchemaVerifier(SchemaVerifier.Settings(**settings))
    return await v.verify(VerifyContext(req, 1, given))


JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}}


@pytest.mark.parametrize(
    ("content", "ok", "why"),
    [
        ('{"city": "Oslo", "population": 709000}', True, "valid"),
        ('```json\n{"city": "Oslo", "population": 1}\n```', True, "valid"),
        ('{"city": "Oslo"}', False, "'population' is a required property"),
        ('{"city": "Oslo", "population": "many"}', False, "at population"),
        ('{"city": "Oslo", "population": 1, "x": 2}', False, "Additional properties"),
        ("Oslo has about 700k people", False, "not JSON"),
    ],
)
async def test_json_schema_response_format(content: str, ok: bool, why: str) -> None:
    got = await schema_verdict(request(response_format=JSON_SCHEMA), answer(content))
    assert got.accepted is ok
    assert why in got.reason


async def test_the_first_valid_answer_of_a_parallel_hop_is_chosen() -> None:
    req = request(response_format=JSON_SCHEMA)
    got = await schema_verdict(req, answer("nope"), answer('{"city": "A", "population": 3}'))
    assert (got.accepted, got.chosen) == (True, 1)


async def test_json_object_needs_an_object() -> None:
    req = request(response_format={"type": "json_object"})
    assert (await schema_verdict(req, answer('{"a": 1}'))).accepted
    assert not (await schema_verdict(req, answer("[1, 2]"))).accepted


async def test_tool_call_arguments_against_the_tool_schema() -> None:
    req = request(tools=TOOLS)
    good = answer(None, ("get_weather", '{"city": "Oslo"}'))
    assert (await schema_verdict(req, good)).accepted
    missing = await schema_verdict(req, answer(None, ("get_weather", "{}")))
    assert "'city' is a required property" in missing.reason
    unknown = await schema_verdict(req, answer(None, ("launch", "{}")))
    assert "unknown tool 'launch'" in unknown.reason
    broken = await schema_verdict(req, answer(None, ("get_weather", "{city")))
    assert "not JSON" in broken.reason
    required = request(tools=TOOLS, tool_choice="required")
    assert not (await schema_verdict(required, answer("I won't call it"))).accepted


async def test_an_unconstrained_request_is_accepted_unless_configured_otherwise() -> None:
    assert (await schema_verdict(request(), answer("anything"))).accepted
    strict = await schema_verdict(request(), answer("anything"), accept_unconstrained=False)
    assert not strict.accepted


async def test_an_invalid_request_schema_rejects_instead_of_raising() -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "c", "schema": {"type": "nonsense"}}}
    got = await schema_verdict(request(response_format=bad), answer('{"a": 1}'))
    assert not got.accepted
    assert "schema is invalid" in got.reason


@pytest.mark.parametrize(
    ("text", "score"),
    [("Score: 7", 0.7), ("score - 10", 1.0), ("8\nbecause it is right", 0.8), ("Score: 0", 0.0)],
)
def test_parse_score(text: str, score: float) -> None:
    assert parse_score(text) == score


@pytest.mark.parametrize("text", ["no idea", "Score: 11", ""])
def test_a_reply_without_a_valid_score_raises(text: str) -> None:
    with pytest.raises(ValueError, match="score"):
        parse_score(text)


async def test_judge_scores_each_answer_and_serves_the_best() -> None:
    asked: list[ChatRequest] = []

    async def call(judge_request: ChatRequest) -> JudgeReply:
        asked.append(judge_request)
        score = "9" if "good answer" in judge_request.messages[-1].text() else "2"
        reply = Completion(id="j", model="judge", content=f"Score: {score}")
        return JudgeReply(reply, "judge", Decimal("0.001"))

    v = JudgeVerifier(JudgeVerifier.Settings(model="frontier", threshold=0.8))
    ctx = VerifyContext(request(), 1, (answer("bad answer"), answer("good answer")), call=call)
    got = await v.verify(ctx)
    assert (got.accepted, got.score, got.chosen) == (True, 0.9, 1)
    assert [r.model for r in asked] == ["frontier", "frontier"]
    assert asked[0].messages[0].role == "system"
    assert "Candidate answer:\nbad answer" in asked[0].messages[1].text()
