"""The SSE renderer alone: block numbering and transitions the fakes never produce
(text then tools, two tool calls, an empty answer), checked against what the
official SDK's accumulator builds from the events."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from modelyard.server.messages.stream import EventRenderer
from modelyard.types import Chunk, ToolCallDelta, Usage

EVENT = TypeAdapter[Any](RawMessageStreamEvent)


def render(chunks: list[Chunk]) -> list[tuple[str, dict[str, Any]]]:
    renderer = EventRenderer(request_id="r1", model="m", input_tokens=7)
    text = renderer.start()
    for chunk in chunks:
        text += "".join(renderer.events(chunk, Decimal("0.001") if chunk.usage else None))
    text += "".join(renderer.end())
    events = []
    for block in text.strip().split("\n\n"):
        name, data = (line.split(": ", 1)[1] for line in block.splitlines())
        events.append((name, json.loads(data)))
    return events


def final_message(events: list[tuple[str, dict[str, Any]]]) -> Any:
    snapshot = None
    buffers: dict[int, bytes] = {}
    for name, data in events:
        if name == "ping":
            continue
        snapshot = accumulate_event(
            event=EVENT.validate_python(data), current_snapshot=snapshot, json_bufs=buffers
        )
    return snapshot


def test_text_then_two_tool_calls_become_three_blocks() -> None:
    events = render(
        [
            Chunk(content="Let me "),
            Chunk(content="check."),
            Chunk(tool_calls=(ToolCallDelta(index=0, id="call_a", name="weather"),)),
            Chunk(tool_calls=(ToolCallDelta(index=0, arguments='{"city": '),)),
            Chunk(tool_calls=(ToolCallDelta(index=0, arguments='"Paris"}'),)),
            Chunk(tool_calls=(ToolCallDelta(index=1, id="call_b", name="time", arguments="{}"),)),
            Chunk(finish_reason="tool_calls"),
            Chunk(usage=Usage(input_tokens=20, output_tokens=9, cached_input_tokens=5)),
        ]
    )
    starts = [d["index"] for n, d in events if n == "content_block_start"]
    stops = [d["index"] for n, d in events if n == "content_block_stop"]
    assert starts == stops == [0, 1, 2]
    assert [n for n, _ in events].count("ping") == 1
    message = final_message(events)
    assert message.content[0].text == "Let me check."
    assert (message.content[1].id, message.content[1].input) == ("call_a", {"city": "Paris"})
    assert (message.content[2].name, message.content[2].input) == ("time", {})
    assert message.stop_reason == "tool_use"
    # Anthropic counts input without cache reads; the delta's usage replaces the estimate.
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (15, 5)
    assert message.usage.output_tokens == 9
    assert events[-2][1]["modelyard"] == {"cost_usd": "0.001"}


def test_an_empty_answer_still_has_the_whole_sequence() -> None:
    events = render([Chunk(finish_reason="length")])
    assert [n for n, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]
    message = final_message(events)
    assert message.content == []
    assert message.stop_reason == "max_tokens"
    assert message.usage.input_tokens == 7  # no usage reported: the estimate stays


def test_a_stop_sequence_is_reported() -> None:
    events = render([Chunk(content="a"), Chunk(finish_reason="stop", stop_sequence="END")])
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
