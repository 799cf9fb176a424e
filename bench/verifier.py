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
import os
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
    # Unique prompt and answer *endings* (what the verifier embeds) every verdict.
    return verifier, lambda k: VerifyContext(
        ChatRequest.model_validate(
            {"messages": [{"role": "user", "content": f"{PROMPT} (request {k})"}]}
        ),
        1,
        (answer(0, f"{REASONING} (request {k})"),),
    )


async def measure(
    verifier: Verifier, contexts: Contexts, n: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU milliseconds per verdict. On a busy machine the wall
    time includes waiting for a core; the CPU time (all threads, ONNX Runtime's too) is
    what the verdict costs, and close to its wall time on an idle core."""
    for k in range(50):
        await verifier.verify(contexts(-k - 1))
    wall: list[float] = []
    cpu: list[float] = []
    for k in range(n):
        ctx = contexts(k)
        c0, t0 = time.process_time(), time.perf_counter()
        await verifier.verify(ctx)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main(n: int, minilm: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {n} verdicts each")
        print(f"{'verifier':<36} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'cpu p99':>8}")
        for name, build in cases(minilm, Path(tmp)):
            try:
                verifier, contexts = build()
            except Exception as exc:  # an optional encoder that cannot be opened here
                print(f"{name:<36} skipped: {exc}")
                continue
            wall, cpu = await measure(verifier, contexts, n)
            print(
                f"{name:<36} {pct(wall, 50):>8.3f} {pct(wall, 99):>8.3f} "
                f"{pct(cpu, 50):>8.3f} {pct(cpu, 99):>8.3f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--no-minilm", action="store_true", help="skip the ONNX MiniLM encoder")
    args = parser.parse_args()
    anyio.run(main, args.n, not args.no_minilm)
