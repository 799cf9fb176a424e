"""Label values with a ceiling: the first `limit` distinct values keep their own
series, every later one is counted under `other`.

Models, deployments, policies and statuses are bounded by the config and the code;
keys and teams are not (an operator can create thousands of keys), so their labels
go through a `BoundedLabel`. The bound is per process: with `--workers N` the
aggregate can hold up to N × `limit` distinct values in the worst case.
"""

from __future__ import annotations

from typing import Final

OTHER: Final = "other"
# A call made without a key (keys not in use): a value, not an empty label.
NONE: Final = "none"
DEFAULT_LABEL_LIMIT: Final = 100


class BoundedLabel:
    """Maps raw values to label values, admitting at most `limit` distinct ones."""

    def __init__(self, limit: int = DEFAULT_LABEL_LIMIT) -> None:
        if limit < 1:
            raise ValueError("a label limit must be at least 1")
        self.limit = limit
        self._admitted: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None:
            return NONE
        if value in self._admitted:
            return value
        if len(self._admitted) >= self.limit:
            return OTHER
        self._admitted.add(value)
        return value
