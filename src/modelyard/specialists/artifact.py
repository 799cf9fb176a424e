"""The specialist artifact: a versioned folder a server can load with NumPy alone.

`manifest.json` (see `modelyard.specialists.manifest`) says what the weights
mean: format version, name, task, the label set (row i of the head is label i),
the encoder they were trained on (name to rebuild it, id to check it is the
same), the calibration temperature, the default confidence threshold, held-out
metrics and the hash of the training data.
`weights.npz` holds the head: `W`, `b` for a linear head, `W1`, `b1`, `W2`, `b2`
for a one-hidden-layer MLP. Nothing here imports scikit-learn: serving needs only
NumPy and the encoder.

A version folder is written under a temporary name and renamed into place, with
`manifest.json` written last, so a reader never sees half an artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.embeddings import Encoder
from modelyard.embeddings.base import Vectors
from modelyard.specialists.manifest import (
    MANIFEST,
    WEIGHTS,
    ArtifactError,
    HeadKind,
    Manifest,
    read_manifest,
    resolve,
    version_dirs,
    version_number,
)
from modelyard.specialists.oos import BANK, CENTRE, CENTROIDS, PRECISION, Geometry, OosScorer

# Old versions kept beside the newest, for a quick rollback by hand.
KEEP_VERSIONS = 3

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Prediction:
    """A label, its calibrated confidence, and (for an artifact with an out-of-scope
    section) its out-of-scope score in (0, 1)."""

    label: str
    confidence: float
    oos_score: float | None = None


def softmax(logits: Floats, temperature: float = 1.0) -> Floats:
    """Row-wise softmax of `logits / temperature`, stable for large logits."""
    z: Floats = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class Head:
    """The classifier on top of the embeddings: linear or a one-hidden-layer ReLU MLP."""

    def __init__(self, kind: HeadKind, weights: Mapping[str, npt.NDArray[Any]]) -> None:
        needed = ("W", "b") if kind == "linear" else ("W1", "b1", "W2", "b2")
        missing = [k for k in needed if k not in weights]
        if missing:
            raise ArtifactError(f"{kind} head is missing weights {', '.join(missing)}")
        self.kind = kind
        self.weights = {k: np.asarray(weights[k], dtype=np.float64) for k in needed}

    def logits(self, vectors: Vectors) -> Floats:
        x = np.asarray(vectors, dtype=np.float64)
        w = self.weights
        if self.kind == "mlp":
            x = np.maximum(x @ w["W1"].T + w["b1"], 0.0)
            return np.asarray(x @ w["W2"].T + w["b2"])
        return np.asarray(x @ w["W"].T + w["b"])

    @property
    def n_classes(self) -> int:
        return int(self.weights["b" if self.kind == "linear" else "b2"].shape[0])

    @property
    def n_features(self) -> int:
        return int(self.weights["W" if self.kind == "linear" else "W1"].shape[1])


class SpecialistModel:
    """A loaded specialist: encoder + head + calibration. Classifies texts."""

    def __init__(
        self, manifest: Manifest, head: Head, encoder: Encoder, oos: OosScorer | None = None
    ) -> None:
        if head.n_classes != len(manifest.labels):
            raise ArtifactError(
                f"the head has {head.n_classes} outputs but the manifest lists "
                f"{len(manifest.labels)} labels"
            )
        if head.n_features != encoder.dim:
            raise ArtifactError(
                f"the head reads {head.n_features}-wide vectors but encoder "
                f"{encoder.id} gives {encoder.dim}"
            )
        self.manifest = manifest
        self.head = head
        self.encoder = encoder
        self.labels = manifest.labels
        self.oos = oos

    def probabilities(self, vectors: Vectors, *, calibrated: bool = True) -> Floats:
        """(n, labels) probabilities; temperature-scaled unless `calibrated=False`."""
        temperature = self.manifest.temperature if calibrated else 1.0
        return softmax(self.head.logits(vectors), temperature)

    def predict_vectors(self, vectors: Vectors) -> list[Prediction]:
        probs = self.probabilities(vectors)
        best = probs.argmax(axis=1)
        confidence = probs.max(axis=1)
        scores = self.oos.scores(vectors, confidence) if self.oos is not None else None
        return [
            Prediction(
                self.labels[i],
                float(confidence[row]),
                None if scores is None else float(scores[row]),
            )
            for row, i in enumerate(best)
        ]

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """Label and calibrated confidence for each text (the encoder truncates long ones)."""
        return self.predict_vectors(self.encoder.encode(texts))


# ---------------------------------------------------------------------------
# Reading and writing
# ---------------------------------------------------------------------------


def load_specialist(path: str | Path, encoder: Encoder | None = None) -> SpecialistModel:
    """Load the specialist at `path` with NumPy only. The encoder is rebuilt by name
    (or passed in) and must report the id the head was trained on."""
    folder = resolve(path)
    manifest = read_manifest(folder)
    if encoder is None:
        from modelyard.embeddings import load_encoder

        encoder = load_encoder(manifest.encoder.name)
    if encoder.id != manifest.encoder.id:
        raise ArtifactError(
            f"{folder}: trained on encoder {manifest.encoder.id}, but "
            f"'{manifest.encoder.name}' is now {encoder.id}; retrain the specialist"
        )
    try:
        with np.load(folder / WEIGHTS, allow_pickle=False) as npz:
            weights = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{folder / WEIGHTS}: unreadable weights ({exc})") from None
    oos = None
    if manifest.oos is not None:
        missing = [k for k in (BANK, CENTRE, CENTROIDS, PRECISION) if k not in weights]
        if missing:
            raise ArtifactError(f"{folder / WEIGHTS}: out-of-scope arrays missing: {missing}")
        geometry = Geometry(
            np.asarray(weights[BANK], dtype=np.float32),
            np.asarray(weights[CENTRE], dtype=np.float64),
            np.asarray(weights[CENTROIDS], dtype=np.float64),
            np.asarray(weights[PRECISION], dtype=np.float64),
        )
        oos = OosScorer(manifest.oos, geometry)
    return SpecialistModel(manifest, Head(manifest.head, weights), encoder, oos)


def next_version(name_dir: Path) -> int:
    """The version number the next training run of this specialist gets."""
    versions = version_dirs(name_dir)
    return version_number(versions[-1]) + 1 if versions else 1


def save_specialist(
    name_dir: Path, manifest: Manifest, weights: Mapping[str, npt.NDArray[Any]]
) -> Path:
    """Write a new version folder under `name_dir` atomically; prune old versions."""
    final = name_dir / f"v{manifest.version:04d}"
    if final.exists():
        raise ArtifactError(f"{final}: already exists; versions are never overwritten")
    name_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=name_dir))
    try:
        # The out-of-scope bank of training vectors stays float32: it is the bulk of
        # the file and float32 is what the encoder gives.
        arrays: dict[str, Any] = {
            k: np.asarray(v, dtype=np.float32 if k == BANK else np.float64)
            for k, v in weights.items()
        }
        np.savez(tmp / WEIGHTS, **arrays)
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in version_dirs(name_dir)[:-KEEP_VERSIONS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_extra(folder: Path, filename: str, payload: Mapping[str, Any]) -> Path:
    """Write a JSON file (an evaluation report) into a version folder."""
    out = folder / filename
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return out
