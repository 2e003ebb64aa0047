"""Log ids that are time keys: ordering by id is ordering by time, and a time range is an id range.

A log's id is `(time_ns >> 20) << 8` plus a slot: time is cut into buckets of 2^20 ns (about 1 ms), each
with 256 ids. Records take the next free slot of their bucket, so ids grow with time, and records that
share a bucket keep their arrival order. A full-text index whose rowid is this id therefore streams matches
newest first (`ORDER BY rowid DESC`) and restricts a time range before it runs (PERFORMANCE.md section 4).

A bucket that overflows (more than 256 records in one ms) lends ids from the next buckets; the largest such
lend ("spill", in buckets) is remembered by the store so that time ranges stay exact. Records that arrive
late (older than what is stored) still land in their own time's bucket, behind what is already there.
The id values are compact: at realistic rates neighbouring ids differ by a few hundred at most.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

BUCKET_SHIFT = 20
"""A bucket is 2^20 ns (1.048576 ms) of log time."""
SLOT_BITS = 8
SLOTS = 1 << SLOT_BITS
"""Ids per bucket."""


def bucket_of(time_ns: int) -> int:
    """The bucket a time falls in."""
    return time_ns >> BUCKET_SHIFT


def first_id(bucket: int) -> int:
    """The smallest id of a bucket."""
    return bucket << SLOT_BITS


class IdRange(NamedTuple):
    """The ids that can hold records with times in [start_ns, end_ns).

    Every such record has `lo <= id < hi`; records with `inner_lo <= id < inner_hi` are certainly inside the
    time range, so only ids outside the inner range need their time checked. None means unbounded.
    """

    lo: int | None
    hi: int | None
    inner_lo: int | None
    inner_hi: int | None


def id_range(start_ns: int | None, end_ns: int | None, spill: int) -> IdRange:
    """The id bounds of a time range, given the store's largest spill so far."""
    if start_ns is None:
        lo = inner_lo = None
    else:
        lo = first_id(bucket_of(start_ns))
        inner_lo = first_id(bucket_of(start_ns) + spill + 1)
    if end_ns is None:
        hi = inner_hi = None
    else:
        hi = first_id(bucket_of(end_ns - 1) + spill + 1)
        inner_hi = first_id(bucket_of(end_ns - 1))
    return IdRange(lo, hi, inner_lo, inner_hi)


class Assignment(NamedTuple):
    """Ids for a batch (in the batch's order) and the largest spill any of them needed."""

    ids: list[int]
    spill: int


def assign_ids(
    times: Sequence[int], top: int | None, highest_in: Callable[[int, int], int | None]
) -> Assignment:
    """Ids for records with these times, given the largest id stored (`top`).

    `highest_in(lo, hi)` returns the largest stored id in [lo, hi) or None; it is only asked about buckets
    older than `top`'s, that is for records arriving late, so an in-order batch costs no lookups.
    """
    in_order = _in_order(times, top)
    if in_order is not None:
        return in_order
    ids = [0] * len(times)
    assigned: dict[int, int] = {}  # bucket -> largest id given out by this call
    spill = 0
    for i in sorted(range(len(times)), key=times.__getitem__):
        bucket = bucket_of(times[i])
        new = _free_id(bucket, top, assigned, highest_in)
        ids[i] = new
        new_bucket = new >> SLOT_BITS
        assigned[new_bucket] = max(assigned.get(new_bucket, new), new)
        top = new if top is None else max(top, new)
        spill = max(spill, new_bucket - bucket)
    return Assignment(ids, spill)


def _in_order(times: Sequence[int], top: int | None) -> Assignment | None:
    """The common case without lookups: times never decrease and the first is in or after top's bucket."""
    ids = []
    last = top if top is not None else -(2**63)
    spill = 0
    previous = None
    for time_ns in times:
        if previous is not None and time_ns < previous:
            return None
        previous = time_ns
        key = (time_ns >> BUCKET_SHIFT) << SLOT_BITS
        if key > last:
            last = key
        elif key < (last >> SLOT_BITS) << SLOT_BITS:
            return None  # older than the newest bucket in use: a late record
        else:
            last += 1
            spill = max(spill, (last >> SLOT_BITS) - (key >> SLOT_BITS))
        ids.append(last)
    return Assignment(ids, spill)


def _free_id(
    bucket: int, top: int | None, assigned: dict[int, int], highest_in: Callable[[int, int], int | None]
) -> int:
    """The first unused id in `bucket`, or in the buckets after it when it is full."""
    while True:
        lo = first_id(bucket)
        if top is None or lo > top:
            return lo
        if bucket == top >> SLOT_BITS:
            return top + 1  # top is the largest id anywhere, so the next one is free (it may spill)
        stored = highest_in(lo, lo + SLOTS)
        highest = max(lo - 1, assigned.get(bucket, lo - 1), lo - 1 if stored is None else stored)
        if highest + 1 < lo + SLOTS:
            return highest + 1
        bucket += 1
