"""Agreement: votes on final answers, claims matched across members, zones."""

from __future__ import annotations

import pytest

from modelyard.council.agreement import Ballot, assess, claim_zone, key_of, meets
from modelyard.council.claims import (
    Claim,
    SimilarityMatcher,
    claim_map,
    link_claims,
    split_claims,
)
from modelyard.council.runner import citations

TOKENS = SimilarityMatcher()


def test_keys_come_from_parsed_answers_first_then_the_extractors() -> None:
    assert key_of("whatever", " C ") == "c"
    assert key_of("The answer is (B).", None) == "B"
    assert key_of("so #### 1,000", None) == "1000"
    assert key_of("I cannot say.", None) is None
    assert key_of("It has 2 million people.", None, "text") is None
    assert key_of("Answer: D", None, "choice") == "D"


def test_a_majority_vote_wins_and_scores_its_share() -> None:
    ballots = [Ballot("a", "Answer: C", "C"), Ballot("b", "(C)", "C"), Ballot("c", "D", "D")]
    got = assess(ballots, 0.67, TOKENS)
    assert (got.method, got.winner, got.zone) == ("vote", 0, "agreed")
    assert got.votes == {"C": ("a", "b"), "D": ("c",)}
    assert round(got.score, 4) == 0.6667
    (c_claim, d_claim) = got.claims
    assert (c_claim.supporting, c_claim.contradicting) == (("a", "b"), ("c",))
    assert (d_claim.supporting, d_claim.contradicting) == (("c",), ("a", "b"))


def test_an_answer_without_a_final_agrees_with_nobody() -> None:
    ballots = [Ballot("a", "no idea", None), Ballot("b", "(C)", "C"), Ballot("c", "D", "D")]
    got = assess(ballots, 0.67, TOKENS)
    # A three-way split: the earliest key wins the tie, at a third: disputed.
    assert (got.winner, got.zone) == (1, "disputed")
    assert round(got.score, 4) == 0.3333
    assert "no extractable final answer from a" in got.reason


def test_two_thirds_meets_a_min_agreement_of_067_but_not_07() -> None:
    assert meets(2 / 3, 0.67)
    assert not meets(2 / 3, 0.7)


def test_claims_are_sentences_without_list_markers() -> None:
    text = "Paris is the capital. It has 2 million people!\n- Rivers: the Seine."
    assert split_claims(text) == [
        "Paris is the capital.",
        "It has 2 million people!",
        "Rivers: the Seine.",
    ]
    assert split_claims("") == []


def test_claims_supported_by_members_are_agreed_and_a_changed_number_contradicts() -> None:
    answers = [
        ("a", "Paris is the capital of France. It has 2 million people."),
        ("b", "Paris is the capital of France. It has 2 million people."),
        ("c", "Paris is the capital of France. It has 9 million people."),
    ]
    claims = claim_map(answers, TOKENS)
    by = {(c.member, c.text): c for c in claims}
    capital = by[("a", "Paris is the capital of France.")]
    assert capital.supporting == ("a", "b", "c")
    assert capital.contradicting == ()
    two = by[("a", "It has 2 million people.")]
    assert two.supporting == ("a", "b")
    assert two.contradicting == ("c",)
    assert claim_zone(capital, 3, 0.67) == "agreed"
    # Contradicted by c: disputed even with two supporters.
    assert claim_zone(two, 3, 0.67) == "disputed"
    nine = by[("c", "It has 9 million people.")]
    assert claim_zone(nine, 3, 0.67) == "disputed"


def test_free_text_is_assessed_by_claims() -> None:
    ballots = [
        Ballot("a", "The sky is blue. Grass is green.", None),
        Ballot("b", "The sky is blue. Grass is green.", None),
        Ballot("c", "The sky is blue. Snow is cold.", None),
    ]
    got = assess(ballots, 0.67, TOKENS)
    assert got.method == "claims"
    # 5 of 6 claims are supported by two or more members; c's snow is alone.
    assert (round(got.score, 4), got.zone, got.winner) == (0.8333, "agreed", 0)


def test_a_negation_contradicts_a_related_claim() -> None:
    assert TOKENS._relate("The drug is safe for children.", "The drug is not safe.", 0.4) == (
        "contradicts"
    )
    assert TOKENS._relate("The drug is safe.", "Bananas are yellow.", 0.0) is None


def test_an_adjudicated_answer_links_its_claims_back_to_members() -> None:
    answers = [("a", "Oslo is in Norway."), ("b", "Oslo is in Norway. It is cold.")]
    links = link_claims("Oslo is in Norway [1][2]. It is cold [2].", answers, TOKENS, "judge")
    assert [c.supporting for c in links] == [("a", "b"), ("b",)]
    assert all(isinstance(c, Claim) and c.member == "judge" for c in links)


def test_citations_are_numbers_or_model_ids() -> None:
    members = ["small", "vision-mid", "frontier"]
    assert citations("Yes [1], and [member 3]. Also [9].", members) == ("small", "frontier")
    assert citations("per [vision-mid]", members) == ("vision-mid",)
    assert citations("no sources at all", members) == ()


def test_a_lazy_matcher_builds_nothing_until_claims_are_matched() -> None:
    from modelyard.council.claims import LazyMatcher

    lazy = LazyMatcher("tokens")
    assert lazy._inner is None
    assert lazy.relations(["a b c", "a b c"])[0][1] == "supports"
    assert lazy.name == "tokens"


def test_an_embedding_matcher_that_cannot_load_falls_back_to_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelyard.council import claims

    def broken(kind: str = "auto") -> claims.ClaimMatcher:
        raise RuntimeError("no model files")

    monkeypatch.setattr(claims, "default_matcher", broken)
    lazy = claims.LazyMatcher("embedding")
    assert lazy.name == "tokens"
