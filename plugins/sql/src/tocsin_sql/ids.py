"""Compact ids: W3C trace ids as 16 bytes and span ids as 8 bytes, and metric series ids as a label hash.

Hex text costs twice the bytes in every row and every index entry; raw bytes compare in the same order as
the lowercase hex, so index order and cursors are unchanged. Any-case hex is accepted and comes back in
lowercase (the form `tocsin.models` documents); anything else is refused with an UnstorableRecord naming the field.
"""

from __future__ import annotations

import hashlib
import string

from tocsin.ext import UnstorableRecord

_HEX = frozenset(string.hexdigits)


def _to_bytes(value: str, width: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != width or len(value) != width * 2:  # fromhex skips spaces: count both
        raise UnstorableRecord(f"{what} must be {width * 2} hex characters, got {str(value)[:80]!r}")
    return raw


def trace_bytes(value: str, what: str = "trace_id") -> bytes:
    """A 32-hex trace id as its 16 bytes."""
    return _to_bytes(value, 16, what)


def span_bytes(value: str, what: str = "span_id") -> bytes:
    """A 16-hex span id as its 8 bytes."""
    return _to_bytes(value, 8, what)


def optional_trace_bytes(value: str | None, what: str = "trace_id") -> bytes | None:
    """`trace_bytes`, passing None through."""
    return None if value is None else _to_bytes(value, 16, what)


def optional_span_bytes(value: str | None, what: str = "span_id") -> bytes | None:
    """`span_bytes`, passing None through."""
    return None if value is None else _to_bytes(value, 8, what)


def hex_or_none(value: bytes | None) -> str | None:
    """Stored id bytes back to lowercase hex."""
    return None if value is None else value.hex()


def is_trace_id(value: str) -> bool:
    """Whether a query value can be a stored trace id at all (so a lookup can be skipped when not)."""
    return len(value) == 32 and _HEX.issuperset(value)


def is_span_id(value: str) -> bool:
    """Whether a query value can be a stored span id at all."""
    return len(value) == 16 and _HEX.issuperset(value)


def series_id(name: str, labels_text: str) -> int:
    """A series' id: a signed 64-bit hash of its name and canonical labels, so writers never look it up."""
    digest = hashlib.blake2b(f"{name}\x00{labels_text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
