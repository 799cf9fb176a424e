"""The learned verifier: trained from (prompt, answer, good?) with scikit-learn,
served from its artifact with NumPy, thresholded."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sklearn")

import numpy as np

from modelyard.embeddings import HashingEncoder
from modelyard.learned.outcomes import OutcomePrompt, OutcomeSet
from modelyard.types import ChatRequest, Completion
from modelyard.verifiers.base import Answer, VerifyContext
from modelyard.verifiers.learned import (
    LearnedVerifier,
    LogisticModel,
    stated_confidence,
)
from modelyard.verifiers.learned_train import examples, train_verifier

ENCODER = HashingEncoder(dim=64)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Paris. Confidence: 80%", 0.8),
        ("I'm 95% sure it is B", 0.95),
        ("confidence: 0.3", 0.3),
        ("Answer B (confidence: high)", 0.85),
        ("just an answer", None),
    ],
)
def test_stated_confidence(text: str, value: float | None) -> None:
    assert stated_confidence(text) == value


def synthetic(n: int = 120) -> tuple[list[str], list[str], list[int]]:
    """Good answers are confident and on topic; bad ones hedge."""
    rng = np.random.default_rng(0)
    prompts, answers, labels = [], [], []
    for i in range(n):
        topic = ["rivers", "planets", "taxes", "birds"][i % 4]
        prompts.append(f"tell me about {topic} number {i % 7}")
        if rng.random() < 0.5:
            answers.append(f"{topic} facts: a clear answer about {topic}. Confidence: 90%")
            labels.append(1)
        else:
            answers.append("hmm I am not sure maybe perhaps unclear. Confidence: 20%")
            labels.append(0)
    return prompts, answers, labels


def test_training_separates_good_from_bad_and_round_trips(tmp_path: Path) -> None:
    prompts, answers, labels = synthetic()
    model = train_verifier(prompts, answers, labels, ENCODER)
    assert model.summary["train_accuracy"] >= 0.95
    model.save(tmp_path / "v")
    loaded = LogisticModel.load(tmp_path / "v")
    assert loaded.encoder == ENCODER.id
    assert loaded.threshold == model.threshold
    assert np.allclose(loaded.weights, model.weights)


async def test_the_verifier_accepts_good_and_rejects_bad(tmp_path: Path) -> None:
    prompts, answers, labels = synthetic()
    train_verifier(prompts, answers, labels, ENCODER, threshold=0.5).save(tmp_path / "v")
    settings = LearnedVerifier.Settings(artifact=str(tmp_path / "v"))
    v = LearnedVerifier(settings, encoder=ENCODER)
    req = ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": "tell me about rivers number 3"}]}
    )

    def a(text: str) -> Answer:
        return Answer("m", 1, Completion(id="c", model="m", content=text))

    good = await v.verify(VerifyContext(req, 1, (a(answers[labels.index(1)]),)))
    bad = await v.verify(VerifyContext(req, 1, (a(answers[labels.index(0)]),)))
    assert good.accepted
    assert not bad.accepted
    assert good.score is not None
    assert bad.score is not None
    assert good.score > bad.score
    both = await v.verify(
        VerifyContext(req, 1, (a(answers[labels.index(0)]), a(answers[labels.index(1)])))
    )
    assert both.chosen == 1


def test_a_verifier_trained_on_another_encoder_is_refused(tmp_path: Path) -> None:
    prompts, answers, labels = synthetic()
    train_verifier(prompts, answers, labels, ENCODER).save(tmp_path / "v")
    with pytest.raises(Exception, match="trained on encoder"):
        LearnedVerifier(
            LearnedVerifier.Settings(artifact=str(tmp_path / "v")), encoder=HashingEncoder(32)
        )


def test_training_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both good and bad"):
        train_verifier(["p"], ["a"], [1], ENCODER)


def test_examples_come_from_cells_with_a_response_and_a_quality() -> None:
    prompts = tuple(
        OutcomePrompt(f"p{i}", ({"role": "user", "content": f"q{i}"},), "t") for i in range(2)
    )
    data = OutcomeSet(
        name="tiny",
        prompts=prompts,
        models=("a", "b"),
        quality=np.array([[1.0, 0.0], [np.nan, 0.7]]),
        cost_usd=np.zeros((2, 2)),
        input_tokens=np.zeros((2, 2), dtype=np.int64),
        output_tokens=np.zeros((2, 2), dtype=np.int64),
        responses={("p0", "a"): "right", ("p0", "b"): "wrong", ("p1", "a"): "x"},
    )
    got = examples(data)
    assert got == (["user: q0", "user: q0"], ["right", "wrong"], [1, 0])


def test_a_verifier_from_config_alone_opens_the_encoder_it_was_trained_on(
    tmp_path: Path,
) -> None:
    # A config names only the artifact: the encoder is opened from the id it recorded
    # (`hashing-bow-64` is opened as `hashing-64`), as a server would build it.
    prompts, answers, labels = synthetic()
    train_verifier(prompts, answers, labels, ENCODER).save(tmp_path / "v")
    v = LearnedVerifier(LearnedVerifier.Settings(artifact=str(tmp_path / "v")))
    assert v.encoder.id == ENCODER.id
    assert v.score(prompts[0], [answers[0]]) == pytest.approx(
        LearnedVerifier(
            LearnedVerifier.Settings(artifact=str(tmp_path / "v")), encoder=ENCODER
        ).score(prompts[0], [answers[0]])
    )
