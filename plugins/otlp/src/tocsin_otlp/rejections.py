"""What mapping one OTLP request refused, and the id and time rules a record must pass to be kept."""

from __future__ import annotations

MAX_NS = 2**63 - 1
"""The latest time tocsin stores (signed 64-bit nanoseconds); OTLP times are unsigned."""
TRACE_ID_BYTES, SPAN_ID_BYTES = 16, 8


class Rejections:
    """Records refused while mapping one request, and the first reason, for the partial-success answer."""

    __slots__ = ("count", "reason")

    def __init__(self) -> None:
        self.count = 0
        self.reason = ""

    def add(self, reason: str, count: int = 1) -> None:
        """Count `count` refused records; the first reason given is the one reported."""
        self.count += count
        if not self.reason:
            self.reason = reason


def hex_id(raw: bytes, size: int) -> str | None:
    """An id as lowercase hex when it has `size` bytes and is not all zeros; None when empty or invalid."""
    if len(raw) != size or not any(raw):
        return None
    return raw.hex()
