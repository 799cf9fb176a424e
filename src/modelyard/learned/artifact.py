"""Router artifacts: a versioned directory a trained predictor is saved to and served from.

    <dir>/manifest.json   format and version, kind, encoder, model names, training
                          data hash, hyper-parameters, search results, metrics
    <dir>/arrays.npz      the predictor's NumPy arrays (no pickle)

Loading checks the format version and, in `modelyard.learned.scorer`, that the
encoder at hand is the one the predictor was trained on: vectors from another
encoder would be silently meaningless, so a mismatch is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.learned.knn import KnnPredictor
from modelyard.learned.mf import MfPredictor
from modelyard.learned.mlp import MlpPredictor
from modelyard.learned.predictors import Arrays, Predictor

FORMAT = "modelyard-router"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"

PREDICTORS: dict[str, Any] = {"knn": KnnPredictor, "mlp": MlpPredictor, "mf": MfPredictor}


class ArtifactError(ValueError):
    """An artifact that cannot be used: missing, malformed, another format version,
    or trained on another encoder."""


class EncoderInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    dim: int = Field(gt=0)


class DataInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    sha256: str
    prompts: int = Field(ge=0)
    sources: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    """What an artifact says about itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    kind: str
    version: str = ""
    encoder: EncoderInfo
    models: list[str]
    data: DataInfo
    seed: int = 0
    params: dict[str, Any]
    search: list[dict[str, Any]] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    # Median answer length per model in the training data, for expected cost.
    output_tokens: dict[str, float] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())


def content_version(kind: str, manifest: Manifest, arrays: Arrays) -> str:
    """`<kind>-<10 hex>`: a hash of what decides predictions (arrays, params, models,
    encoder), so two artifacts with the same version predict the same."""
    h = hashlib.sha256()
    head = [kind, manifest.encoder.id, manifest.models, manifest.params]
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return f"{kind}-{h.hexdigest()[:10]}"


def save_artifact(directory: Path, manifest: Manifest, predictor: Predictor) -> Path:
    """Write the artifact, replacing an older artifact in `directory` (but never
    unrelated files: a non-empty directory without a manifest is refused)."""
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise ArtifactError(f"{directory}: exists and is not a directory")
        if any(directory.iterdir()) and not (directory / MANIFEST).exists():
            raise ArtifactError(
                f"{directory}: not empty and not a router artifact; pick another --out"
            )
    directory.mkdir(parents=True, exist_ok=True)
    savez: Any = np.savez  # (its stub types **arrays as the allow_pickle flag)
    _atomic_write(directory / ARRAYS, lambda fh: savez(fh, **predictor.arrays()))
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    _atomic_write(directory / MANIFEST, lambda fh: fh.write(text.encode()))
    return directory


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_artifact(directory: Path) -> tuple[Manifest, Predictor]:
    """Read and check an artifact; the predictor is rebuilt with NumPy only."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(
            f"{directory}: no router artifact here (no {MANIFEST}); train one with "
            "`modelyard router train`"
        )
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ArtifactError(f"{manifest_path}: not a {FORMAT} manifest")
    if raw.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: artifact format version {raw.get('format_version')!r}, but this "
            f"modelyard reads version {FORMAT_VERSION}; retrain it with `modelyard router train`"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ArtifactError(f"{manifest_path}: {problems}") from None
    if manifest.kind not in PREDICTORS:
        raise ArtifactError(
            f"{manifest_path}: unknown kind {manifest.kind!r} (known: {', '.join(PREDICTORS)})"
        )
    try:
        with np.load(directory / ARRAYS, allow_pickle=False) as npz:
            arrays: Arrays = {name: npz[name] for name in npz.files}
        predictor: Predictor = PREDICTORS[manifest.kind].from_state(arrays, manifest.params)
        shape = predictor.predict(np.zeros((1, manifest.encoder.dim), np.float32)).shape
    except (OSError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{directory / ARRAYS}: cannot load the predictor ({exc})") from None
    if shape != (1, len(manifest.models)):
        raise ArtifactError(
            f"{directory}: the predictor scores {shape[1]} models but the manifest lists "
            f"{len(manifest.models)}"
        )
    return manifest, predictor
