"""The request class of the whole API: JSON bodies that msgspec refuses for a reason real clients produce.

stdlib `json.dumps` and JavaScript's `JSON.stringify` write broken text as lone surrogate escapes
(`"\\ud800"`); msgspec refuses those, so such a body is decoded with stdlib json instead and
`monitor.ingest` makes the values storable (U+FFFD) and counts them, rather than the whole batch being
refused. A body nested too deeply to decode is a 400, never a RecursionError.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class LenientJSONRequest(Request[Any, Any, Any]):
    """A request whose JSON body may hold lone surrogate escapes; see the module docstring."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise SerializationException("the body is nested too deeply") from None
        except SerializationException:
            body = await self.body()
            try:
                return json.loads(body, parse_constant=_no_constant)
            except (ValueError, RecursionError):
                raise SerializationException("the body is not valid JSON") from None
