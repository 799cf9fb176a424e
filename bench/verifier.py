"""How long each cascade verifier without a model call takes to judge one hop.

    . .venv/bin/activate && python bench/verifier.py              # 2,000 verdicts each
    python bench/verifier.py --n 500 --no-minilm                  # quick, no ONNX encoder

Each verifier judges the same kind of hop it would in production, in-process, on the
event loop (agreement over three answers, schema on a JSON answer and a tool call, the
learned verifier on a prompt and an answer). The time is the `await verify(...)` call
alone: what a verifier adds to a request on top of its hops' model calls. The first
50 verdicts warm up and are not counted. `judge` is not here: it is a model call.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from modelyard.types import ChatRequest, Completion, FunctionCall, ToolCall
from modelyard.verifiers.agreement import AgreementVerifier
from modelyard.verifiers.base import Answer, Verifier, VerifyContext
from modelyard.verifiers.schema import SchemaVerifier

Contexts = Callable[[int], VerifyContext]
PROMPT = "A shop sells pens at $1.25 each. How many pens can you buy with $20? " * 3
REASONING = (
    "Each pen costs $1.25. With $20 we divide: 20 / 1.25 = 16. So sixteen pens can be "
    "bought, with nothing left over. "
) * 4
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer"},
        "districts": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["city", "population"],
}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}


def request(**extra: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": PROMPT}], **extra})


def answer(i: int, content: str | None, *calls: tuple[str, str]) -> Answer:
    tool_calls = tuple(
        ToolCall(id="t", function=FunctionCall(name=n, arguments=a)) for n, a in calls
    )
    return Answer(
        f"m{i}", 1, Completion(id="c", model=f"m{i}", content=content, tool_calls=tool_calls)
    )


def three(last: str, k: int) -> tuple[Answer, ...]:
    # A different text every verdict: the encoders cache texts they have seen.
    return tuple(answer(i, f"(request {k}) " + REASONING + last) for i in range(3))


def cases(minilm: bool, tmp: Path) -> list[tuple[str, Callable[[], tuple[Verifier, Contexts]]]]:
    def agreement(extract: str, similarity: str = "tokens", **kw: Any) -> AgreementVerifier:
        settings = AgreementVerifier.Settings(extract=extract, similarity=similarity)  # type: ignore[arg-type]
        return AgreementVerifier(settings, **kw)

    plain = request()
    out: list[tuple[str, Callable[[], tuple[Verifier, Contexts]]]] = [
        (
            "agreement choice (3 answers)",
            lambda: (
                agreement("choice"),
                lambda k: VerifyContext(plain, 2, three("The answer is (C)", k)),
            ),
        ),
        (
            "agreement number (3 answers)",
            lambda: (agreement("number"), lambda k: VerifyContext(plain, 2, three("#### 16", k))),
        ),
        (
            "agreement text, token overlap (3)",
            lambda: (agreement("text"), lambda k: VerifyContext(plain, 2, three("", k))),
        ),
        (
            "schema, json_schema answer",
            lambda: (
                SchemaVerifier(),
                lambda k: VerifyContext(
                    request(
                        response_format={
                            "type": "json_schema",
                            "json_schema": {"name": "c", "schema": SCHEMA},
                        }
                    ),
                    1,
                    (answer(0, '{"city": "Oslo", "population": 709000, "districts": ["a", "b"]}'),),
                ),
            ),
        ),
        (
            "schema, tool call",
            lambda: (
                SchemaVerifier(),
                lambda k: VerifyContext(
                    request(tools=[TOOL]),
                    1,
                    (answer(0, None, ("get_weather", '{"city": "Oslo"}')),),
                ),
            ),
        ),
        ("learned, hashing-256 encoder", lambda: learned(tmp, "hashing-256")),
    ]
    if minilm:
        out += minilm_cases(tmp, plain)
    return out


def minilm_cases(
    tmp: Path, plain: ChatRequest
) -> list[tuple[str, Callable[[], tuple[Verifier, Contexts]]]]:
    """The verifiers that embed text, with the real ONNX MiniLM encoder."""
    embedding = AgreementVerifier.Settings(extract="text", similarity="embedding")
    return [
        (
            "agreement text, MiniLM (3)",
            lambda: (AgreementVerifier(embedding), lambda k: VerifyContext(plain, 2, three("", k))),
        ),
        ("learned, MiniLM encoder", lambda: learned(tmp, "minilm-l6-v2")),
    ]


def learned(tmp: Path, encoder_name: str) -> tuple[Verifier, Contexts]:
    from modelyard.embeddings import load_encoder
    from modelyard.verifiers.learned import LearnedVerifier
    from modelyard.verifiers.learned_train import train_verifier

    encoder = load_encoder(encoder_name)
    prompts = [f"question {i % 5}" for i in range(40)]
    answers = [("sure: 16. Confidence: 90%" if i % 2 else "not sure, maybe") for i in range(40)]
    labels = [i % 2 for i in range(40)]
    path = tmp / encoder_name
    train_verifier(prompts, answers, labels, encoder).save(path)
    verifier = LearnedVerifier(LearnedVerifier.Settings(artifact=str(path)), encoder=encoder)
    return verifier, lambda k: VerifyContext(request(), 1, (answer(0, f"({k}) {REASONING}"),))


async def measure(verifier: Verifier, contexts: Contexts, n: int) -> list[float]:
    for k in range(50):
        await verifier.verify(contexts(-k - 1))
    times: list[float] = []
    for k in range(n):
        ctx = contexts(k)
        t0 = time.perf_counter()
        await verifier.verify(ctx)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main(n: int, minilm: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'verifier':<36} {'p50 ms':>8} {'p99 ms':>8}   ({n} verdicts each)")
        for name, build in cases(minilm, Path(tmp)):
            try:
                verifier, contexts = build()
            except Exception as exc:  # an optional encoder that cannot be opened here
                print(f"{name:<36} skipped: {exc}")
                continue
            times = await measure(verifier, contexts, n)
            print(f"{name:<36} {pct(times, 50):>8.3f} {pct(times, 99):>8.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--no-minilm", action="store_true", help="skip the ONNX MiniLM encoder")
    args = parser.parse_args()
    anyio.run(main, args.n, not args.no_minilm)
