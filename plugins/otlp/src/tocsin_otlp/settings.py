"""`[plugins.otlp]`: how much the OTLP receiver takes in at once."""

from __future__ import annotations

from typing import Annotated

import msgspec

MIB = 1024 * 1024


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The receiver's limits; every one bounds memory, so nothing queues without end."""

    max_body_bytes: Annotated[int, msgspec.Meta(ge=1)] = 20 * MIB
    """Largest request body, compressed and again after gunzip (OTLP's recommended 20 MiB); larger is 413."""
    max_concurrent_requests: Annotated[int, msgspec.Meta(ge=1)] = 4
    """Requests decoded and written at once; one more is answered 503 with Retry-After (no queue)."""
    max_tracked_series: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    """Cumulative metric series whose last point is remembered (to store increases); the oldest is forgotten."""
    retry_after_s: Annotated[int, msgspec.Meta(ge=1)] = 1
    """The Retry-After (seconds) of a 503 when busy or when storage did not take the batch."""
