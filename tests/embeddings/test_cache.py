"""CachedEncoder: only misses reach the inner encoder, in one batch, in order, LRU-bounded."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

np = pytest.importorskip("numpy", reason="needs the 'learned' extra")

from modelyard.embeddings import CachedEncoder, HashingEncoder  # noqa: E402
from modelyard.embeddings.base import Vectors  # noqa: E402


class CountingEncoder(HashingEncoder):
    """HashingEncoder that records every batch it is asked to encode."""

    def __init__(self) -> None:
        super().__init__(dim=64)
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        return super().encode(texts)


TEXTS = ["route this ticket", "detect the intent", "pick a category", "refund my card"]


def test_protocol_attributes_come_from_the_inner_encoder() -> None:
    inner = CountingEncoder()
    cached = CachedEncoder(inner)
    assert (cached.id, cached.dim, cached.max_tokens) == (inner.id, 64, None)
    assert cached.token_lengths(["a b c", ""]) == [3, 0]


def test_vectors_equal_the_inner_encoders_in_the_callers_order() -> None:
    inner = CountingEncoder()
    cached = CachedEncoder(inner)
    cached.encode(TEXTS[:2])
    mixed = [TEXTS[3], TEXTS[0], TEXTS[2], TEXTS[1]]
    np.testing.assert_array_equal(cached.encode(mixed), HashingEncoder(64).encode(mixed))


def test_only_misses_are_encoded_in_one_batch_and_counted() -> None:
    inner = CountingEncoder()
    cached = CachedEncoder(inner)
    cached.encode(TEXTS[:2])
    assert (cached.hits, cached.misses) == (0, 2)
    cached.encode([TEXTS[1], TEXTS[2], TEXTS[0], TEXTS[3]])
    assert inner.calls == [TEXTS[:2], [TEXTS[2], TEXTS[3]]]
    assert (cached.hits, cached.misses) == (2, 4)
    cached.encode(TEXTS)
    assert len(inner.calls) == 2
    assert (cached.hits, cached.misses) == (6, 4)


def test_a_text_repeated_within_one_call_is_encoded_once() -> None:
    inner = CountingEncoder()
    cached = CachedEncoder(inner)
    out = cached.encode(["same", "other", "same"])
    assert inner.calls == [["same", "other"]]
    np.testing.assert_array_equal(out[0], out[2])
    assert (cached.hits, cached.misses) == (1, 2)


def test_least_recently_used_entry_is_evicted() -> None:
    inner = CountingEncoder()
    cached = CachedEncoder(inner, max_entries=2)
    cached.encode([TEXTS[0]])
    cached.encode([TEXTS[1]])
    cached.encode([TEXTS[0]])  # TEXTS[0] is now the most recent
    cached.encode([TEXTS[2]])  # evicts TEXTS[1]
    assert len(cached) == 2
    inner.calls.clear()
    cached.encode([TEXTS[0], TEXTS[1]])
    assert inner.calls == [[TEXTS[1]]]


def test_returned_rows_are_copies_callers_may_modify() -> None:
    cached = CachedEncoder(CountingEncoder())
    first = cached.encode(TEXTS[:1])
    first[:] = 0.0
    assert np.linalg.norm(cached.encode(TEXTS[:1])[0]) == pytest.approx(1.0)


def test_empty_input_and_clear() -> None:
    cached = CachedEncoder(CountingEncoder())
    assert cached.encode([]).shape == (0, 64)
    cached.encode(TEXTS)
    cached.clear()
    assert (len(cached), cached.hits, cached.misses) == (0, 0, 0)


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        CachedEncoder(CountingEncoder(), max_entries=0)


def test_concurrent_callers_get_correct_rows() -> None:
    cached = CachedEncoder(CountingEncoder(), max_entries=50)
    texts = [f"request number {i}" for i in range(200)]
    expected = HashingEncoder(64).encode(texts)
    failures: list[int] = []

    def work(offset: int) -> None:
        for start in range(offset, len(texts), 7):
            batch = texts[start : start + 5]
            if not np.array_equal(cached.encode(batch), expected[start : start + 5]):
                failures.append(start)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(cached) <= 50


def test_encode_batched_matches_one_call_and_reports_progress() -> None:
    from modelyard.embeddings import encode_batched

    encoder = HashingEncoder(dim=32)
    texts = [f"ticket number {i} about cards" for i in range(10)]
    steps: list[int] = []
    batched = encode_batched(encoder, texts, batch=4, advance=steps.append)
    assert steps == [4, 4, 2]
    np.testing.assert_array_equal(batched, encoder.encode(texts))
    assert encode_batched(encoder, []).shape == (0, 32)
