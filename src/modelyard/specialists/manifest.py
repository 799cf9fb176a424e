"""The specialist manifest and where artifacts live on disk (JSON only, no NumPy).

This module is what the engine reads at start-up to put trained specialists in the
catalog, so it imports nothing heavier than pydantic: a gateway without the
`learned` extra still starts, and only serving a specialist needs NumPy.

    <root>/<name>/
        v0001/  manifest.json  weights.npz  [eval.json  eval.png]
        v0002/  ...                          (the highest complete version is served)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.errors import ModelyardError

# Version 2 added the out-of-scope section (`oos`) and `threshold_rule`; version 1
# artifacts still load (no out-of-scope check, confidence only).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
_VERSION_DIR = re.compile(r"^v(\d{4,})$")
# A name becomes a folder and part of a model id (`specialist/<name>`).
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

HeadKind = Literal["linear", "mlp"]


class ArtifactError(ModelyardError):
    """A specialist artifact is missing, incomplete, of an unknown format or mismatched."""

    code = "invalid_artifact"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncoderInfo(_Frozen):
    name: str  # what `load_encoder` takes
    id: str  # what the encoder reports; must match at load
    dim: int = Field(gt=0)
    max_tokens: int | None = None


class TrainingInfo(_Frozen):
    data_sha256: str
    source: str
    rows: int = Field(ge=0)
    seed: int
    seconds: float = Field(ge=0)
    params: dict[str, Any] = Field(default_factory=dict)


OosMethod = Literal["oos-examples", "held-out-classes"]


class OosInfo(_Frozen):
    """The out-of-scope combiner and threshold (see `modelyard.specialists.oos`):
    score = sigmoid(((features - mean) / scale) . weights + bias); at or above
    `threshold` a request escalates as out of scope. `method` and `detail` say what
    the threshold was chosen on; `expected_*` are measured there and on the
    in-scope held-out slice."""

    scores: tuple[str, ...]
    k: int = Field(ge=1)
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float = Field(gt=0, lt=1)
    method: OosMethod
    detail: str
    target_recall: float = Field(gt=0, le=1)
    expected_oos_recall: float
    expected_inscope_answer_rate: float
    auroc: dict[str, float] = Field(default_factory=dict)


class Manifest(_Frozen):
    """What `manifest.json` holds (format version 2; 1 still reads). Row i of the head
    is `labels[i]`; probabilities are softmax(logits / temperature); below
    `threshold` the request escalates (`threshold_rule` says how it was chosen), and
    with an `oos` section so does a request whose out-of-scope score reaches
    `oos.threshold`."""

    format_version: int
    name: str
    version: int = Field(ge=1)
    task: str
    labels: tuple[str, ...]
    encoder: EncoderInfo
    head: HeadKind
    temperature: float = Field(gt=0)
    threshold: float = Field(ge=0, le=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    training: TrainingInfo
    created_at: datetime
    threshold_rule: str | None = None
    oos: OosInfo | None = None

    @property
    def heldout_accuracy(self) -> float | None:
        return self.metrics.get("heldout_accuracy")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ArtifactError(
            f"specialist name {name!r}: use lower-case letters, digits, '.', '_' or '-' "
            "(at most 64), starting with a letter or digit"
        )
    return name


def specialists_home(env: Mapping[str, str] | None = None) -> Path:
    """`$MODELYARD_HOME/specialists`, else `~/.modelyard/specialists` (read at call time)."""
    env = os.environ if env is None else env
    home = env.get("MODELYARD_HOME")
    base = Path(home).expanduser() if home else Path("~/.modelyard").expanduser()
    return base / "specialists"


def version_number(folder: Path) -> int:
    """The N of a `vNNNN` folder name, 0 for any other name."""
    match = _VERSION_DIR.match(folder.name)
    return int(match.group(1)) if match else 0


def version_dirs(name_dir: Path) -> list[Path]:
    """Complete version folders (with a manifest) under `name_dir`, oldest first."""
    if not name_dir.is_dir():
        return []
    found = [(version_number(p), p) for p in name_dir.iterdir() if (p / MANIFEST).is_file()]
    return [p for n, p in sorted(found) if n > 0]


def resolve(path: str | Path) -> Path:
    """`path` itself if it is a version folder, else its newest complete version."""
    path = Path(path).expanduser()
    if (path / MANIFEST).is_file():
        return path
    versions = version_dirs(path)
    if not versions:
        raise ArtifactError(f"{path}: no trained specialist here (no {MANIFEST} in any vNNNN/)")
    return versions[-1]


def read_manifest(path: str | Path) -> Manifest:
    """The manifest of the specialist at `path` (a name or version folder)."""
    file = resolve(path) / MANIFEST
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{file}: unreadable manifest ({exc})") from None
    found = data.get("format_version") if isinstance(data, dict) else None
    if found not in READABLE_VERSIONS:
        raise ArtifactError(
            f"{file}: format_version {found!r}; this modelyard reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ArtifactError(f"{file}: {problems}") from None
