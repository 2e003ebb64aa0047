"""tocsin-sql's pure parts: time-key log ids, tier planning, id codecs, compiled statements."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from tocsin_sql import codec, ids, logkeys, tiers
from tocsin_sql.database import StatementCache

from tocsin.errors import StorageError

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000

# -- log ids ----------------------------------------------------------------------------------------------

_TIMES = st.lists(
    st.one_of(st.integers(0, 50_000_000), st.sampled_from([0, 1, 1_048_575, 1_048_576, 3_000_000])).map(
        lambda offset: T0 + offset
    ),
    max_size=40,
)


@given(batches=st.lists(_TIMES, max_size=8), bursts=st.lists(st.integers(0, 600), max_size=2))
def test_ids_are_unique_keep_time_order_and_stay_inside_their_range(batches, bursts):
    batches += [[T0 + 2_000_000] * burst for burst in bursts]  # whole buckets overflowing
    table: dict[int, int] = {}  # id -> time, the stored rows
    spill = 0
    for times in batches:
        top = max(table) if table else None
        assignment = logkeys.assign_ids(
            times, top, lambda lo, hi: max((i for i in table if lo <= i < hi), default=None)
        )
        assert len(set(assignment.ids)) == len(times)
        assert not set(assignment.ids) & set(table)
        ordered = sorted(range(len(times)), key=times.__getitem__)
        assert [assignment.ids[i] for i in ordered] == sorted(assignment.ids)  # a batch is laid out in time order
        table.update(zip(assignment.ids, times, strict=True))
        spill = max(spill, assignment.spill)
    for log_id, time_ns in table.items():
        bucket = logkeys.bucket_of(time_ns)
        assert logkeys.first_id(bucket) <= log_id < logkeys.first_id(bucket + spill + 1)


@given(
    times=st.lists(st.integers(0, 20_000_000).map(lambda offset: T0 + offset), min_size=1, max_size=300),
    start=st.none() | st.integers(0, 20_000_000).map(lambda offset: T0 + offset),
    end=st.none() | st.integers(0, 20_000_000).map(lambda offset: T0 + offset),
)
def test_a_time_range_maps_to_an_id_range_that_holds_every_record_in_it(times, start, end):
    assignment = logkeys.assign_ids(times, None, lambda lo, hi: None)
    bounds = logkeys.id_range(start, end, assignment.spill)
    for log_id, time_ns in zip(assignment.ids, times, strict=True):
        inside = (start is None or time_ns >= start) and (end is None or time_ns < end)
        within = (bounds.lo is None or log_id >= bounds.lo) and (bounds.hi is None or log_id < bounds.hi)
        surely = (bounds.inner_lo is None or log_id >= bounds.inner_lo) and (
            bounds.inner_hi is None or log_id < bounds.inner_hi
        )
        assert within or not inside
        assert inside or not surely


def test_in_order_batches_need_no_lookups():
    def never(lo: int, hi: int) -> int | None:
        raise AssertionError("looked up a bucket for an in-order record")

    first = logkeys.assign_ids([T0, T0 + 5, T0 + 2_000_000], None, never)
    second = logkeys.assign_ids([T0 + 2_000_000, T0 + 9_000_000], max(first.ids), never)
    assert first.ids[0] + 1 == first.ids[1] and second.ids[0] == max(first.ids) + 1
    assert first.spill == second.spill == 0


# -- tiers ------------------------------------------------------------------------------------------------

_SPAN = 5 * 3600 * SECOND


@given(
    start=st.integers(0, _SPAN),
    length=st.integers(1, _SPAN),
    step_s=st.one_of(st.none(), st.sampled_from([1, 7, 30, 60, 90, 600, 3600, 5400, 7200])),
    floor=st.one_of(st.none(), st.integers(0, _SPAN)),
)
def test_a_plan_covers_every_bucket_exactly_once(start, length, step_s, floor):
    start, end = T0 + start, T0 + start + length
    floor = None if floor is None else T0 + floor
    step = length if step_s is None else step_s * SECOND
    if length // step > 2000:
        step = length
    plan = tiers.plan(start, end, step, floor)
    pieces = [(lo, hi, None) for lo, hi in plan.rollups]
    for width_s, ranges in plan.tiers.items():
        width = width_s * SECOND
        for lo, hi in ranges:
            assert lo % width == 0 and hi % width == 0
            assert floor is None or lo >= floor
            pieces += [(window, window + width, width_s) for window in range(lo, hi, width)]
    pieces.sort()
    assert pieces[0][0] == start and pieces[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))  # no gap, no overlap
    for lo, hi, width_s in pieces:
        if width_s is not None:  # a window never straddles two buckets
            assert (lo - start) // step == (hi - 1 - start) // step


def test_a_day_is_read_from_hours_and_its_edges():
    start = T0 + 30 * SECOND
    plan = tiers.plan(start, start + 86_400 * SECOND, 86_400 * SECOND, None)
    hours = sum((hi - lo) // (3600 * SECOND) for lo, hi in plan.tiers[3600])
    minutes = sum((hi - lo) // (60 * SECOND) for lo, hi in plan.tiers[60])
    raw = sum(hi - lo for lo, hi in plan.rollups) // SECOND
    assert (hours, minutes, raw) == (23, 59, 60)  # T0 + 30 s is 830 s into an hour and 50 s into a minute


# -- ids and statements -----------------------------------------------------------------------------------


def test_ids_round_trip_as_bytes_and_bad_ones_name_the_field():
    assert ids.trace_bytes("0A" * 16) == bytes([10] * 16)
    assert ids.hex_or_none(ids.span_bytes("ff" * 8)) == "ff" * 8
    for bad in ("", "zz" * 16, "a" * 31, "a" * 33):
        with pytest.raises(StorageError, match="Span trace_id must be 32 hex"):
            ids.trace_bytes(bad, "Span trace_id")
    assert ids.series_id("m", codec.to_json({"b": "1", "a": "2"})) == ids.series_id("m", '{"a":"2","b":"1"}')


class _Dialect:
    sqlalchemy = sqlite.dialect()


def test_statements_compile_once_with_named_positional_parameters():
    table = sa.Table("t", sa.MetaData(), sa.Column("a", sa.Integer), sa.Column("b", sa.Text))
    built = []

    def build(_, with_b: bool) -> sa.Select:
        built.append(with_b)
        where = [table.c.a > sa.bindparam("low")] + ([table.c.b == sa.bindparam("b")] if with_b else [])
        return sa.select(table.c.a).where(*where).limit(sa.bindparam("limit"))

    cache = StatementCache(_Dialect())  # type: ignore[arg-type]
    compiled = cache.get(build, True)
    assert cache.get(build, True) is compiled and built == [True]
    assert compiled.sql.count("?") == len(compiled.names)
    assert compiled.args({"low": 1, "b": "x", "limit": 5}) == (1, "x", 5, 0)  # OFFSET defaults to 0
    assert cache.get(build, False).names == ("low", "limit", "param_1")
