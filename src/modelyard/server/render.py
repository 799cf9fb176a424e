"""JSON responses that always render."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse


class SafeJSONResponse(JSONResponse):
    """A `JSONResponse` that never fails to render: text holding lone surrogates (an
    upstream's `"\\ud800"`, say) cannot be UTF-8 encoded, so it is sent with
    non-ASCII characters escaped instead (`\\ud800`, valid JSON) rather than a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")
