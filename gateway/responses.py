"""``JSONResponse``: starlette's JSON response rendered with orjson.

FastAPI deprecated its ``ORJSONResponse`` (a warning on every response built with it); this is the
same thing without the warning: a starlette ``JSONResponse`` whose body orjson writes.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSON


class JSONResponse(_StarletteJSON):
    """A JSON response whose body orjson renders (numpy-free, compact, UTF-8)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
