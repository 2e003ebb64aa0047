"""Per-minute and per-hour merges of metric rollups, so a query over a day reads hours, not 86,400 rows.

Every rollup written is also folded into the tier row of its minute and of its hour (windows aligned to the
epoch): counts and sums add, min/max widen, `last` follows the latest rollup start, sketches merge. A tier
row is therefore exactly the merge of the rollups that start inside its window, and `plan` covers each
bucket of a query with the widest windows that fit inside it, reading raw rollups only at its edges. The
aggregates `tocsin.storage.rollups.evaluate` computes come out the same as from the raw rollups (sums may differ
in the last bits of a float, as any change of summation order does).

Retention sweeps delete rollups older than a cutoff and every tier row that starts before the next hour
boundary above it; that boundary becomes the tier floor, below which `plan` reads raw rollups only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from tocsin.ext import LogSketch, Sketch, StorageError

SECOND = 1_000_000_000
TIER_WIDTHS_S: tuple[int, ...] = (60, 3600)
"""Tier window widths in seconds, narrowest first; each divides the next."""

Range = tuple[int, int]
"""A half-open [lo, hi) range of start times in ns."""


class RollupRow(NamedTuple):
    """What folding needs of a rollup: its series, start and values (the sketch decoded, or None)."""

    series_id: int
    start_ns: int
    count: int
    sum: float
    min: float
    max: float
    last: float
    sketch: Sketch | None


class _Fold:
    """The running merge of the rollups of one tier window."""

    __slots__ = ("count", "last", "last_start_ns", "max", "min", "sketch", "sum")

    def __init__(self, row: RollupRow) -> None:
        self.count, self.sum, self.min, self.max = row.count, row.sum, row.min, row.max
        self.last, self.last_start_ns = row.last, row.start_ns
        self.sketch: LogSketch | None = None if row.sketch is None else LogSketch.from_model(row.sketch)

    def add(self, row: RollupRow) -> None:
        """Merge one more rollup of the window."""
        self.count += row.count
        self.sum += row.sum
        self.min = min(self.min, row.min)
        self.max = max(self.max, row.max)
        if row.start_ns >= self.last_start_ns:  # a later write of the same start is the newer one
            self.last, self.last_start_ns = row.last, row.start_ns
        if row.sketch is not None:
            if self.sketch is None:
                self.sketch = LogSketch.from_model(row.sketch)
            else:
                self.sketch.merge(row.sketch)


def window_start(start_ns: int, width_s: int) -> int:
    """The start of the epoch-aligned window of `width_s` seconds that holds `start_ns`."""
    width = width_s * SECOND
    return start_ns // width * width


def fold(rows: Iterable[RollupRow]) -> list[tuple[Any, ...]]:
    """Tier rows (series_id, width_s, start_ns, last_start_ns, count, sum, min, max, last, sketch) for rollups.

    Rows come back with the sketch as a `LogSketch` (or None), ready to encode; a sketch layout mismatch
    is a StorageError.
    """
    folds: dict[tuple[int, int, int], _Fold] = {}
    try:
        for row in rows:
            for width_s in TIER_WIDTHS_S:
                key = (row.series_id, width_s, window_start(row.start_ns, width_s))
                existing = folds.get(key)
                if existing is None:
                    folds[key] = _Fold(row)
                else:
                    existing.add(row)
    except ValueError as error:
        raise StorageError(f"cannot merge rollups of one series: {error}") from None
    return [
        (*key, f.last_start_ns, f.count, f.sum, f.min, f.max, f.last, f.sketch) for key, f in folds.items()
    ]


class Plan(NamedTuple):
    """Which rows answer a query: raw rollup start ranges, and window start ranges per tier width."""

    rollups: list[Range]
    tiers: dict[int, list[Range]]


def _inside(lo: int, hi: int, width_ns: int) -> Range | None:
    """The whole windows of `width_ns` that fit in [lo, hi), as a range of their starts' span, or None."""
    first = -(-lo // width_ns) * width_ns
    last = hi // width_ns * width_ns
    return (first, last) if first < last else None


def _coalesce(ranges: list[Range]) -> list[Range]:
    merged: list[Range] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        elif lo < hi:
            merged.append((lo, hi))
    return merged


def plan(start_ns: int, end_ns: int, step_ns: int, floor_ns: int | None) -> Plan:
    """Cover every bucket [b, min(b + step, end)) with the widest tier windows that fit inside it.

    Windows must also start at or after `floor_ns` (None: no floor). What no window covers is read raw.
    """
    rollups: list[Range] = []
    tiers: dict[int, list[Range]] = {width: [] for width in TIER_WIDTHS_S}
    for bucket in range(start_ns, end_ns, step_ns):
        bucket_end = min(bucket + step_ns, end_ns)
        uncovered = [(bucket, bucket_end)]
        lowest = bucket if floor_ns is None else max(bucket, floor_ns)
        for width_s in reversed(TIER_WIDTHS_S):
            fitted = _inside(lowest, bucket_end, width_s * SECOND)
            if fitted is None:
                continue
            remaining = []
            for lo, hi in uncovered:
                inner = (max(lo, fitted[0]), min(hi, fitted[1]))
                if inner[0] < inner[1]:
                    tiers[width_s].append(inner)
                    remaining += [(lo, inner[0]), (inner[1], hi)]
                else:
                    remaining.append((lo, hi))
            uncovered = [(lo, hi) for lo, hi in remaining if lo < hi]
        rollups += uncovered
    return Plan(_coalesce(rollups), {width: _coalesce(ranges) for width, ranges in tiers.items() if ranges})
