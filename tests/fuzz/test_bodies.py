"""Hypothesis: hostile chat bodies and headers through the real ASGI app.

Unicode edge cases (NUL, lone surrogates, astral characters, bidi controls, BOM),
non-finite and enormous numbers, huge strings and deeply nested values, in every
field and in `x-modelyard-*` headers. For each: no 5xx, errors in OpenAI's shape,
and the ledger equal to the calls the fake upstream received.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.fuzz.gateway import build_gateway, check_response

GATEWAY = build_gateway()
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

EDGE_TEXT = ["\x00", "a\x00b", "\ud800", "\udfff", "x\ud83d", "\ud83d\ude00", "\u202e", "\ufeff"]
texts = st.one_of(
    st.sampled_from(EDGE_TEXT),
    # Every code point, surrogates included (Hypothesis leaves them out by default).
    st.text(st.characters(exclude_categories=()), max_size=20),
    st.text(max_size=20),
    st.just("x" * 200_000),
)
numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 2**63]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)


def _nested(depth: int) -> str:
    """JSON text nested `depth` levels (spliced as text: json.dumps would recurse)."""
    opens = "".join("[" if i % 2 else '{"k":' for i in range(depth))
    closes = "".join("]" if i % 2 else "}" for i in reversed(range(depth)))
    return opens + '"leaf"' + closes


message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "user", "system", "assistant", "tool", "nobody"]),
        "content": st.one_of(texts, texts, st.none(), json_values),
    },
    optional={"name": texts, "tool_call_id": texts},
)
hints = st.fixed_dictionaries(
    {},
    optional={
        "task": texts,
        "max_cost_usd": numbers,
        "max_latency_ms": numbers,
        "policy": st.sampled_from(["auto", "best", "nope"]) | texts,
        "capabilities": st.lists(st.sampled_from(["text", "vision", "bogus"]) | texts),
        "data_class": st.sampled_from(["public", "confidential"]) | texts,
    },
)
bodies = st.fixed_dictionaries(
    {"messages": st.lists(message, min_size=0, max_size=3)},
    optional={
        "model": st.sampled_from(["auto", "best", "gpt", "claude", "nope"]) | texts,
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "user": texts,
        "seed": numbers,
        "temperature": numbers,
        "top_p": numbers,
        "max_tokens": numbers,
        "logit_bias": st.dictionaries(texts, numbers, max_size=3),
        "stop": texts | st.lists(texts, max_size=3),
        "metadata": json_values,
        "modelyard": hints | json_values,
        "tools": json_values,
        "n": numbers,
    },
)
HEADER_NAMES = [
    "x-modelyard-task",
    "x-modelyard-policy",
    "x-modelyard-capabilities",
    "x-modelyard-max-cost-usd",
    "x-modelyard-max-latency-ms",
    "x-modelyard-data-class",
    "x-request-id",
    "x-anything",
]
header_values = st.one_of(
    st.binary(max_size=40),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40).map(
        lambda t: t.encode("latin-1")
    ),
    st.sampled_from([b"0", b"-1", b"nan", b"inf", b"1e999", b"a" * 100_000, b"\x00"]),
)
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=4)


def _post(body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    with TestClient(GATEWAY.app, raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/chat/completions",
            content=body,
            headers=[(b"content-type", b"application/json"), *extra],
        )
    check_response(
        GATEWAY, response.status_code, response.content, response.headers.get("content-type", "")
    )


def _encode(body: dict[str, Any]) -> bytes:
    # allow_nan: NaN and Infinity as the literals a hostile client would send;
    # ensure_ascii: lone surrogates as \\udXXX escapes (the only way to send them).
    return json.dumps(body, allow_nan=True).encode()


@SETTINGS
@given(bodies, st.sampled_from([0, 0, 0, 10, 63, 64, 65, 500, 3000, 100_000]))
def test_hostile_bodies(body: dict[str, Any], depth: int) -> None:
    encoded = _encode(body)
    if depth:
        encoded = encoded[:-1] + b', "deep": ' + _nested(depth).encode() + b"}"
    _post(encoded, [])


@SETTINGS
@given(headers, st.sampled_from([True, False]))
def test_hostile_headers(extra: list[tuple[str, bytes]], stream: bool) -> None:
    body = {"model": "auto", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    _post(_encode(body), [(name.encode(), value) for name, value in extra])


def test_the_fuzzers_reached_the_upstream() -> None:
    # Guard against a fuzzer that only ever exercises the door.
    body = {"messages": [{"role": "user", "content": "hi"}]}
    before = GATEWAY.calls()
    _post(_encode(body), [])
    assert GATEWAY.calls() == before + 1
