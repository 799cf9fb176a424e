"""The agreement verifier: enough answers agree on the final answer (or, for free
text, are similar enough); what finds nothing agrees with nobody."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.types import ChatRequest, Completion
from modelyard.verifiers.agreement import AgreementVerifier, token_similarities
from modelyard.verifiers.base import Answer, VerifyContext

REQUEST = ChatRequest.model_validate({"messages": [{"role": "user", "content": "q"}]})


def answers(
    *texts: str, step: int = 1, parsed: list[str | None] | None = None
) -> tuple[Answer, ...]:
    parsed = parsed or [None] * len(texts)
    return tuple(
        Answer(f"m{i}", step, Completion(id="c", model=f"m{i}", content=t, parsed_answer=p))
        for i, (t, p) in enumerate(zip(texts, parsed, strict=True))
    )


def verifier(**settings: Any) -> AgreementVerifier:
    return AgreementVerifier(AgreementVerifier.Settings(**settings))


async def verdict(
    v: AgreementVerifier, current: tuple[Answer, ...], earlier: tuple[Answer, ...] = ()
) -> Any:
    return await v.verify(VerifyContext(REQUEST, 2, current, earlier))


async def test_accepts_when_min_agree_answers_share_the_final_answer() -> None:
    v = verifier(extract="choice")
    got = await verdict(v, answers("Answer: A", "The answer is (C)", "C"))
    assert (got.accepted, got.score, got.chosen) == (True, 1.0, 1)
    assert "2 of 3 answers agree 'C'" in got.reason


async def test_rejects_when_too_few_agree() -> None:
    got = await verdict(verifier(extract="choice", min_agree=3), answers("Answer: C", "C", "B"))
    assert not got.accepted
    assert got.score == 2 / 3


async def test_earlier_hops_count_towards_agreement() -> None:
    v = verifier(extract="number")
    earlier = answers("It is 1,000 dollars", step=1)
    got = await verdict(v, answers("$1000"), earlier)
    assert got.accepted
    alone = await verdict(v, answers("$1000"))
    assert not alone.accepted


async def test_an_answer_without_an_extractable_value_agrees_with_nobody() -> None:
    v = verifier(extract="number")
    got = await verdict(v, answers("no idea", "no idea"))
    assert not got.accepted
    assert got.reason == "the number extractor found nothing"
    partial = await verdict(v, answers("no idea", "7", "no idea"))
    assert (partial.accepted, partial.chosen) == (False, 1)


async def test_parsed_answers_are_used_before_extractors() -> None:
    v = verifier(extract="choice")
    # The texts name different letters; the parsed answers (a replay's `pred`) agree.
    got = await verdict(v, answers("Answer: A", "Answer: B", parsed=["c", "C"]))
    assert got.accepted


async def test_free_text_by_token_overlap() -> None:
    v = verifier(extract="text", similarity="tokens", min_similarity=0.6)
    same = await verdict(
        v, answers("Paris is the capital of France", "The capital of France is Paris")
    )
    assert same.accepted
    different = await verdict(v, answers("Paris is the capital", "Bananas are yellow fruit"))
    assert not different.accepted


async def test_auto_falls_back_to_similarity_only_when_nothing_is_extractable() -> None:
    v = verifier(similarity="tokens")
    assert (await verdict(v, answers("Answer: C", "Answer: D"))).accepted is False
    texts = answers("the sky is blue today", "today the sky is blue")
    assert (await verdict(v, texts)).accepted


async def test_free_text_by_embedding_similarity() -> None:
    pytest.importorskip("numpy")
    from modelyard.embeddings import HashingEncoder

    v = AgreementVerifier(
        AgreementVerifier.Settings(extract="text", similarity="embedding", min_similarity=0.9),
        encoder=HashingEncoder(dim=256),
    )
    assert v.similarity == "embedding"
    same = await verdict(v, answers("the cat sat on the mat", "the cat sat on the mat"))
    assert same.accepted
    different = await verdict(v, answers("the cat sat on the mat", "stock prices fell sharply"))
    assert not different.accepted


def test_token_similarity_is_symmetric_and_bounded() -> None:
    sims = token_similarities(["a b c", "c b a", "x y", ""])
    assert all(sims[i][j] == sims[j][i] for i in range(4) for j in range(4))
    assert (sims[0][1], sims[0][2], sims[3][3]) == (1.0, 0.0, 0.0)
    assert sims[0][0] == 1.0


async def test_auto_similarity_falls_back_to_tokens_when_no_encoder_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("numpy")
    import modelyard.embeddings as embeddings
    from modelyard.errors import ConfigError

    def broken(name: str = "") -> None:
        raise ConfigError("no ONNX model here")

    monkeypatch.setattr(embeddings, "load_encoder", broken)
    v = verifier(extract="text", similarity="auto", min_similarity=0.6)
    v.similarity = "embedding"  # as `auto` decides when the learned extra is installed
    got = await verdict(v, answers("the sky is blue today", "today the sky is blue"))
    assert got.accepted
    assert v.similarity == "tokens"
    strict = verifier(extract="text", similarity="embedding")
    with pytest.raises(ConfigError):
        await verdict(strict, answers("a b", "a b"))


async def test_an_extractor_that_raises_counts_as_finding_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    v = verifier(extract="choice")
    calls = iter([RuntimeError("plugin bug"), "C", "C"])

    def flaky(text: str, options: object) -> str | None:
        result = next(calls)
        if isinstance(result, Exception):
            raise result
        return result

    v._extractor = flaky
    got = await verdict(v, answers("x", "y", "z"))
    assert (got.accepted, got.chosen) == (True, 1)
    assert "extractor choice raised" in caplog.text
