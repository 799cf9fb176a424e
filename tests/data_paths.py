"""Where the shared datasets live, and a skip marker for machines without them.

The datasets are read in place from `../shared/data` (or `$MODELYARD_SHARED_DATA`);
they are never copied into the repository. On a machine without them the tests that
need them skip with a reason; CI has them, so there they run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MODELYARD_SHARED_DATA", REPO.parent / "shared" / "data"))


def needs_data(name: str) -> pytest.MarkDecorator:
    """Skip unless the dataset folder `name` (e.g. "banking77") is present."""
    path = SHARED_DATA / name
    return pytest.mark.skipif(
        not path.is_dir(),
        reason=f"dataset {name!r} not found at {path} (set MODELYARD_SHARED_DATA)",
    )
