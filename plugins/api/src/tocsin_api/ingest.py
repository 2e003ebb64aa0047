"""What an ingest endpoint (`POST /logs`, `/traces`) answers once its batch is committed."""

from __future__ import annotations

import msgspec

from tocsin.ext import WriteOutcome


class Accepted(msgspec.Struct, kw_only=True):
    """What became of an ingested batch: records stored, dropped as unstorable, and values made storable."""

    accepted: int
    dropped: int
    sanitized: int


def accepted(outcome: WriteOutcome) -> Accepted:
    """The answer for a batch `monitor.ingest` wrote."""
    return Accepted(accepted=outcome.written, dropped=sum(outcome.dropped.values()),
                    sanitized=sum(outcome.sanitized.values()))
