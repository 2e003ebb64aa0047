"""Opaque page cursors: the sort key of the last item of a page, msgpack-encoded and urlsafe base64.

A cursor holds the position, not an offset, so rows written between two page requests neither repeat nor
skip items (keyset pagination). Decoding checks the shape the caller expects, so a cursor from another
listing, or a hand-edited one, is a `QueryError` rather than a wrong page.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

import msgspec

from tocsin.errors import QueryError

T = TypeVar("T")

_MAX_CURSOR_CHARS = 1024


def encode_cursor(key: tuple[Any, ...]) -> str:
    """An opaque, URL-safe string for a page position (the sort key of the page's last item)."""
    return base64.urlsafe_b64encode(msgspec.msgpack.encode(key)).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, shape: type[T]) -> T:
    """The position a cursor from `encode_cursor` holds, checked against `shape` (e.g. `tuple[int, str]`)."""
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise QueryError(f"invalid cursor: longer than {_MAX_CURSOR_CHARS} characters")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        return msgspec.msgpack.decode(raw, type=shape)
    except (binascii.Error, ValueError, msgspec.DecodeError) as error:
        raise QueryError(
            f"invalid cursor {cursor[:40]!r}: pass back a next_cursor unchanged ({error})"
        ) from None
