"""Where the shared datasets live, and a skip marker for machines without them.

The datasets are read in place from `../shared/data` (or `$MODELYARD_SHARED_DATA`);
they are never copied into the repository. The first `shared/data` found walking
up from the repository is used, so a checkout one level deeper still finds them.
On a machine without them the tests that need them skip with a reason; under CI
(`CI` set) they fail instead, because CI must exercise them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _find_shared_data() -> Path:
    override = os.environ.get("MODELYARD_SHARED_DATA")
    if override:
        return Path(override)
    for parent in REPO.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "data"


SHARED_DATA = _find_shared_data()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def needs_data(name: str) -> pytest.MarkDecorator:
    """Skip unless the dataset folder `name` (e.g. "banking77") is present; under CI,
    a missing dataset is an error rather than a skip."""
    path = SHARED_DATA / name
    if path.is_dir() or not _in_ci():
        return pytest.mark.skipif(
            not path.is_dir(),
            reason=f"dataset {name!r} not found at {path} (set MODELYARD_SHARED_DATA)",
        )
    # The fixture (in tests/conftest.py) fails the test with the path it looked in.
    return pytest.mark.usefixtures("missing_dataset_under_ci")
