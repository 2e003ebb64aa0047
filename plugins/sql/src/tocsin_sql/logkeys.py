"""Log ids that are time keys: ordering by id is ordering by time, and a time range is an id range.

A log's id is `(time_ns >> 20) << 8` plus a slot: time is cut into buckets of 2^20 ns (about 1 ms), each
with 256 ids. Records take the next free slot of their bucket, so ids grow with time, and records that
share a bucket keep their arrival order. A full-text index whose rowid is this id therefore streams matches
newest first (`ORDER BY rowid DESC`) and restricts a time range before it runs (PERFORMANCE.md section 4).

A bucket that overflows (more than 256 records in one ms) lends ids from the next buckets; the largest such
lend ("spill", in buckets) is remembered by the store so that time ranges stay exact. Records that arrive
late (older than what is stored) still land in their own time's bucket, behind what is already there.
The id values are compact: at realistic rates neighbouring ids differ by a few hundred at most.

Handing out ids costs O(1) per record however large a burst is (`LogKeys`): the writer remembers the newest
id and the run of full buckets that ends at its bucket, so a record whose bucket is in that run simply takes
the next id, without looking at the buckets one by one. Only records older than the run (late ones) look up
their bucket, once per bucket per batch. What the writer remembers is checked against the store's largest
id at every write and forgotten when it differs (another process wrote, a write rolled back), and it only
ever decides where to look, never which ids are free: an id is always the next after the store's largest,
the first of a bucket past it, or the next after the largest found in the store (and the batch) for a bucket
below it, so no id is handed out twice.
"""

from __future__ import annotations

import itertools
import operator
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


HighestIn = Callable[[int, int], int | None]
"""`highest_in(lo, hi)`: the largest stored id in [lo, hi), or None."""


class LogKeys:
    """Hands out log ids for one writer, remembering between batches where the newest ids are.

    State: `top`, the largest id stored as of the last batch, and `run`, a bucket such that every bucket from
    `run` up to (not including) `top`'s is full. A record in `run`..top's bucket takes the id after the
    largest (the walk over full buckets would end there anyway); a record past top's bucket takes its
    bucket's first id and starts a new run; only a record older than `run` walks its buckets, asking
    `highest_in` once per bucket per batch. A walk that reaches the run lengthens it, so a burst of any size
    costs no lookups, and late records only the ones for their own buckets.

    The state is only a shortcut. Every batch passes the store's real largest id, read inside the write
    transaction; when it differs from `top` (another process wrote, an earlier batch rolled back, a sweep
    deleted the newest rows, or this is the first batch) the run is forgotten and rebuilt by later walks.
    A run stays valid while `top` is unchanged: writers only add rows, and no writer can add to a full bucket.
    """

    __slots__ = ("run", "top")

    def __init__(self) -> None:
        self.top: int | None = None
        self.run = 0

    def assign(self, times: Sequence[int], top: int | None, highest_in: HighestIn) -> Assignment:
        """Ids for records with these times, given the largest id stored (`top`), in the batch's order.

        Records are laid out in time order (arrival order within a bucket). `highest_in` is asked only
        about buckets older than the run ending at `top`'s bucket, that is for records arriving late.
        """
        count = len(times)
        if not count:
            return Assignment([], 0)
        if top is None or top != self.top:
            self.top, self.run = top, 0 if top is None else top >> SLOT_BITS
        order: Sequence[int] = range(count)
        if not all(map(operator.le, times, itertools.islice(times, 1, None))):
            order = sorted(order, key=times.__getitem__)
        ids = [0] * count
        given: dict[int, int] = {}  # bucket -> the largest id this batch gave out in it
        late: _Late | None = None
        spill = 0
        last = 0 if top is None else top  # the largest id stored or given out (once last_bucket is set)
        last_bucket = None if top is None else top >> SLOT_BITS
        run = self.run
        for i in order:
            bucket = times[i] >> BUCKET_SHIFT
            if last_bucket is None or bucket > last_bucket:
                new = last = first_id(bucket)  # past everything: the bucket's first id, and a new run
                last_bucket = run = bucket
            elif bucket >= run:
                new = last = last + 1  # every bucket from this one to last's is full
                last_bucket = new >> SLOT_BITS
            else:
                if late is None:
                    late = _Late(highest_in, given)
                found = late.free_id(bucket, run)
                if found is None:  # every bucket from this one to the run is full: the run grows
                    new = last = last + 1
                    last_bucket = new >> SLOT_BITS
                    run = bucket
                else:
                    new = found
            ids[i] = new
            new_bucket = new >> SLOT_BITS
            given[new_bucket] = new
            if new_bucket - bucket > spill:
                spill = new_bucket - bucket
        self.top, self.run = last, run
        return Assignment(ids, spill)


class _Late:
    """What one batch learns about buckets below the run: their largest stored ids, and which are full."""

    __slots__ = ("full", "given", "highest_in", "stored")

    def __init__(self, highest_in: HighestIn, given: dict[int, int]) -> None:
        self.highest_in = highest_in
        self.given = given  # bucket -> the largest id the batch gave out in it (kept up to date by the batch)
        self.stored: dict[int, int] = {}  # bucket -> the largest stored id (first_id - 1 when empty)
        self.full: dict[int, int] = {}  # a full bucket -> a later bucket, every one in between full too

    def free_id(self, bucket: int, run: int) -> int | None:
        """The id after the largest in `bucket`, or in the first bucket after it with room below `run`;
        None when every bucket from `bucket` up to `run` is full."""
        passed = []
        while bucket < run:
            ahead = self.full.get(bucket)
            if ahead is not None:
                passed.append(bucket)
                bucket = ahead
                continue
            lo, hi = first_id(bucket), first_id(bucket + 1)
            stored = self.stored.get(bucket)
            if stored is None:
                found = self.highest_in(lo, hi)
                stored = self.stored[bucket] = lo - 1 if found is None else found
            highest = max(stored, self.given.get(bucket, stored))
            if highest + 1 < hi:
                if highest + 2 == hi:
                    self.full[bucket] = bucket + 1  # the id returned fills it
                for full in passed:
                    self.full[full] = bucket
                return highest + 1
            self.full[bucket] = bucket + 1
            passed.append(bucket)
            bucket += 1
        for full in passed:
            self.full[full] = run
        return None


def assign_ids(times: Sequence[int], top: int | None, highest_in: HighestIn) -> Assignment:
    """Ids for records with these times, given the largest id stored (`top`), remembering nothing.

    `highest_in(lo, hi)` returns the largest stored id in [lo, hi) or None; it is only asked about buckets
    older than `top`'s, that is for records arriving late, so an in-order batch costs no lookups.
    """
    return LogKeys().assign(times, top, highest_in)
