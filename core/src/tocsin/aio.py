"""Small asyncio helpers shared by the core."""

from __future__ import annotations

import inspect
from typing import Any


async def await_me_maybe(value: Any) -> Any:
    """Call `value` if it is callable, await it if awaitable, and return the result (datasette's pattern)."""
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value
