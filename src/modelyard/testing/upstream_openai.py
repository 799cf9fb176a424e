"""The fake's OpenAI side: `POST /v1/chat/completions`, JSON or SSE.

Answers, in order of precedence: a call of the named (or else the first) tool
when `tools` are given and `tool_choice` is not `none`; a JSON object when
`response_format` asks for one (built from the schema for `json_schema`);
otherwise `"echo: <last user text>"`. Bodies are the openai SDK's own types.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageFunctionToolCall,
)
from openai.types.chat import chat_completion as cc
from openai.types.chat import chat_completion_chunk as ck
from openai.types.chat.chat_completion_message_function_tool_call import Function
from openai.types.completion_usage import PromptTokensDetails
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response, StreamingResponse

from modelyard.testing.wire import (
    after_tool,
    count_tokens,
    echo,
    example_from_schema,
    request_problem,
    split_text,
    text_of,
)

if TYPE_CHECKING:
    from modelyard.testing.upstream import FakeUpstream, RecordedRequest


@dataclass(frozen=True)
class Answer:
    """What the fake will say: text, or one tool call (name, JSON arguments)."""

    text: str | None
    tool: tuple[str, str] | None = None

    @property
    def finish_reason(self) -> Literal["stop", "tool_calls"]:
        return "tool_calls" if self.tool else "stop"

    @property
    def output(self) -> str:
        return self.tool[0] + self.tool[1] if self.tool else self.text or ""


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> Any:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# Type, code and message OpenAI answers each status with (others: a server_error).
_STATUS_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def status_error_body(
    status: int, message: str | None = None, type_: str | None = None
) -> dict[str, Any]:
    """The error body OpenAI sends with HTTP `status`; `type_` overrides its type."""
    default_type, code, text = _STATUS_ERRORS.get(
        status, ("server_error", None, f"Upstream error {status}.")
    )
    body: dict[str, Any] = error_body(message or text, type_ or default_type, code)
    return body


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def plan_answer(body: Mapping[str, Any]) -> Answer:
    """The answer the fake gives to a (valid) chat-completions request."""
    messages = body["messages"]
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    answered = bool(messages) and messages[-1].get("role") == "tool"
    if tools and choice != "none" and not (answered and choice in (None, "auto")):
        wanted = choice["function"]["name"] if isinstance(choice, Mapping) else None
        tool = next((t for t in tools if t["function"]["name"] == wanted), tools[0])
        args = example_from_schema(tool["function"].get("parameters"))
        return Answer(None, (tool["function"]["name"], json.dumps(args)))
    if answered:
        return Answer(after_tool(text_of(messages[-1].get("content"))))
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return Answer(json.dumps(example_from_schema(fmt["json_schema"].get("schema"))))
    if fmt.get("type") == "json_object":
        return Answer(json.dumps({"echo": _last_user_text(messages)}))
    return Answer(echo(_last_user_text(messages)))


def _usage(body: Mapping[str, Any], answer: Answer, cached: int) -> CompletionUsage:
    prompt = count_tokens(body.get("messages")) + count_tokens(body.get("tools") or "")
    completion = count_tokens(answer.output)
    return CompletionUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=min(cached, prompt)),
    )


def completion(body: Mapping[str, Any], answer: Answer, usage: CompletionUsage) -> ChatCompletion:
    """The `chat.completion` object for `answer`."""
    calls = None
    if answer.tool is not None:
        function = Function(name=answer.tool[0], arguments=answer.tool[1])
        calls = [
            ChatCompletionMessageFunctionToolCall(
                id="call_fake0", type="function", function=function
            )
        ]
    message = ChatCompletionMessage(
        role="assistant", content=answer.text, refusal=None, tool_calls=calls
    )
    return ChatCompletion(
        id="chatcmpl-fake0001",
        object="chat.completion",
        created=int(time.time()),
        model=str(body["model"]),
        choices=[
            cc.Choice(index=0, message=message, logprobs=None, finish_reason=answer.finish_reason)
        ],
        usage=usage,
        system_fingerprint="fp_fake",
    )


def chunks(
    body: Mapping[str, Any], answer: Answer, usage: CompletionUsage
) -> Iterator[ChatCompletionChunk]:
    """The `chat.completion.chunk` stream for `answer`, with a final usage chunk when
    `stream_options.include_usage` is set (other chunks then carry `usage: null`)."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def envelope(choices: list[ck.Choice], **fields: Any) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id="chatcmpl-fake0001",
            object="chat.completion.chunk",
            created=int(time.time()),
            model=str(body["model"]),
            system_fingerprint="fp_fake",
            choices=choices,
            **fields,
        )

    def chunk(finish: Any = None, **delta: Any) -> ChatCompletionChunk:
        choice = ck.Choice(
            index=0, delta=ck.ChoiceDelta(**delta), logprobs=None, finish_reason=finish
        )
        return envelope([choice], **extra)

    yield chunk(role="assistant", content="" if answer.tool is None else None)
    if answer.tool is not None:
        name, arguments = answer.tool
        head = ck.ChoiceDeltaToolCallFunction(name=name, arguments="")
        call = ck.ChoiceDeltaToolCall(index=0, id="call_fake0", type="function", function=head)
        yield chunk(tool_calls=[call])
        for piece in split_text(arguments):
            fn = ck.ChoiceDeltaToolCallFunction(arguments=piece)
            yield chunk(tool_calls=[ck.ChoiceDeltaToolCall(index=0, function=fn)])
    else:
        for piece in split_text(answer.text or ""):
            yield chunk(content=piece)
    yield chunk(answer.finish_reason)
    if include_usage:
        yield envelope([], usage=usage)


def _sse(events: Iterator[ChatCompletionChunk]) -> Iterator[str]:
    for event in events:
        yield f"data: {json.dumps(event.model_dump(mode='json', exclude_unset=True))}\n\n"
    yield "data: [DONE]\n\n"


def _auth_error(headers: Headers, key: str | None) -> Response | None:
    if key is None:
        return None
    given = headers.get("authorization", "")
    if given == f"Bearer {key}":
        return None
    if not given:
        msg = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."  # noqa: E501
        return JSONResponse(error_body(msg, "invalid_request_error", None), status_code=401)
    shown = given.removeprefix("Bearer ")
    msg = f"Incorrect API key provided: {shown[:3]}***{shown[-4:]}."
    return JSONResponse(error_body(msg, "invalid_request_error", "invalid_api_key"), 401)


def respond(state: FakeUpstream, headers: Headers, body: Any, record: RecordedRequest) -> Response:
    """Answer one chat-completions request as OpenAI would."""
    if (denied := _auth_error(headers, state.openai_key)) is not None:
        return denied
    if (problem := request_problem("openai", body)) is not None:
        return JSONResponse(error_body(problem, "invalid_request_error", None), status_code=400)
    answer = plan_answer(body)
    usage = _usage(body, answer, state.cached_tokens)
    record.usage = usage.model_dump(mode="json", exclude_none=True)
    if body.get("stream"):
        return StreamingResponse(_sse(chunks(body, answer, usage)), media_type="text/event-stream")
    return JSONResponse(completion(body, answer, usage).model_dump(mode="json", exclude_unset=True))
