"""The memory backend against the storage contract, plus the shared helpers it is built from."""

from __future__ import annotations

import math
import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.errors import QueryError, StorageError
from tocsin.models import LabelMatcher, LogRecord, MetricRollup, SeriesPoints, Sketch
from tocsin.plugins import build_registries, make_plugin_manager
from tocsin.signals.sketch import LogSketch, gamma_for
from tocsin.storage.cursors import decode_cursor, encode_cursor
from tocsin.storage.matchers import compile_matchers
from tocsin.storage.protocol import LogQuery, MetricQuery, StorageBackend
from tocsin.storage.rollups import MAX_POINTS, check_query, evaluate
from tocsin.testing.contracts import StorageBackendContract

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


class TestMemoryStorage(StorageBackendContract):
    """Every contract test, run against MemoryStorage."""

    @pytest.fixture
    async def backend(self):
        storage = MemoryStorage(MemoryStorage.Config())
        await storage.open()
        yield storage
        await storage.close()


# -- the backend itself ---------------------------------------------------------------------------


def test_memory_backend_is_registered_and_satisfies_the_protocol():
    registries = build_registries(make_plugin_manager(entrypoints=False))
    assert registries.storage.get("memory") is MemoryStorage
    assert isinstance(MemoryStorage(MemoryStorage.Config()), StorageBackend)


def test_memory_config_rejects_unknown_keys():
    with pytest.raises(msgspec.ValidationError, match="max_rows"):
        msgspec.convert({"max_rows": 10}, MemoryStorage.Config)


async def test_unstorable_attribute_is_a_storage_error():
    storage = MemoryStorage()
    record = LogRecord(time_ns=T0, level="info", message="x", attributes={"thing": object()})
    with pytest.raises(StorageError, match="LogRecord"):
        await storage.write_logs([record])
    assert (await storage.stats()).rows["logs"] == 0


async def test_rollups_with_different_sketch_layouts_do_not_merge():
    storage = MemoryStorage()
    coarse = LogSketch(gamma_for(0.05))
    coarse.add(1.0)
    await storage.write_metrics([_rollup({}, 0, sketch=LogSketch().to_model())])
    with pytest.raises(StorageError, match="gamma"):
        await storage.write_metrics([_rollup({}, 0, sketch=coarse.to_model())])


# -- matchers -------------------------------------------------------------------------------------


def _m(label: str, op: str, value: str) -> LabelMatcher:
    return LabelMatcher(label=label, op=op, value=value)


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        (_m("env", "=", "prod"), {"env": "prod"}, True),
        (_m("env", "=", "prod"), {"env": "production"}, False),
        (_m("env", "=", ""), {}, True),
        (_m("env", "!=", "prod"), {}, True),
        (_m("env", "=~", "prod|stage"), {"env": "stage"}, True),
        (_m("env", "=~", "prod"), {"env": "production"}, False),  # full match, not search
        (_m("env", "=~", "prod.*"), {"env": "production"}, True),
        (_m("env", "=~", ".*"), {}, True),  # a missing label is ""
        (_m("env", "=~", ".+"), {}, False),
        (_m("env", "!~", "prod"), {"env": "production"}, True),
        (_m("env", "!~", "prod"), {}, True),
        (_m("env", "!~", "p.*"), {"env": "prod"}, False),
    ],
)
def test_matcher_semantics(matcher, labels, expected):
    assert compile_matchers([matcher])(labels) is expected


def test_no_matchers_match_everything_and_all_must_hold():
    assert compile_matchers([])({"a": "1"})
    both = compile_matchers([_m("a", "=", "1"), _m("b", "!=", "2")])
    assert both({"a": "1", "b": "3"})
    assert not both({"a": "1", "b": "2"})


def test_invalid_regex_names_label_and_pattern():
    with pytest.raises(QueryError, match=re.escape("'route'") + ".*" + re.escape("'[a-'")):
        compile_matchers([_m("route", "=~", "[a-")])


def test_unknown_operator_is_a_query_error():
    with pytest.raises(QueryError, match="'~='"):
        compile_matchers([_m("route", "~=", "x")])


@given(st.text(max_size=20), st.text(max_size=20))
def test_escaped_regex_matches_only_that_value(value, other):
    matches = compile_matchers([_m("v", "=~", re.escape(value))])
    assert matches({"v": value})
    assert matches({"v": other}) is (other == value)


# -- rollups --------------------------------------------------------------------------------------


def _rollup(
    labels: dict[str, str],
    at_s: float,
    *,
    values: tuple[float, ...] = (1.0,),
    sketch: Sketch | None = None,
    name: str = "m",
) -> MetricRollup:
    return MetricRollup(
        name=name,
        kind="histogram",
        labels=labels,
        start_ns=T0 + round(at_s * SECOND),
        interval_s=10.0,
        count=len(values),
        sum=sum(values),
        min=min(values),
        max=max(values),
        last=values[-1],
        sketch=sketch,
    )


def _query(**fields) -> MetricQuery:
    return MetricQuery(**{"name": "m", "start_ns": T0, "end_ns": T0 + 60 * SECOND, **fields})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"aggregate": "median"}, "aggregate 'median' is unknown"),
        ({"end_ns": T0}, "must be after start_ns"),
        ({"end_ns": T0 - 1}, "must be after start_ns"),
        ({"step_s": -1.0}, "positive"),
        ({"step_s": math.nan}, "positive"),
        ({"step_s": math.inf}, "positive"),
        ({"step_s": 1e-10}, "positive"),  # rounds to 0 ns
        ({"step_s": 60 / (MAX_POINTS + 1)}, f"the most is {MAX_POINTS}"),
    ],
)
def test_check_query_rejects(fields, message):
    with pytest.raises(QueryError, match=re.escape(message)):
        check_query(_query(**fields))


def test_check_query_allows_exactly_max_points():
    check_query(_query(end_ns=T0 + MAX_POINTS * SECOND, step_s=1.0))
    with pytest.raises(QueryError):
        check_query(_query(end_ns=T0 + MAX_POINTS * SECOND + 1, step_s=1.0))


def test_evaluate_ignores_rollups_outside_the_range():
    rollups = [_rollup({}, -1), _rollup({}, 0, values=(2.0,)), _rollup({}, 60)]
    assert evaluate(rollups, _query(aggregate="sum")) == [_series({}, [(T0, 2.0)])]


def _series(labels: dict[str, str], points: list[tuple[int, float]]) -> SeriesPoints:
    return SeriesPoints(labels=labels, points=points)


def test_group_by_names_a_missing_label_as_absent():
    rollups = [_rollup({"a": "1", "b": "x"}, 0), _rollup({"b": "y"}, 0), _rollup({}, 0)]
    result = evaluate(rollups, _query(aggregate="count", by=["a"]))
    assert result == [_series({}, [(T0, 2.0)]), _series({"a": "1"}, [(T0, 1.0)])]


def test_series_are_sorted_by_labels_not_input_order():
    rollups = [_rollup({"h": "b"}, 0), _rollup({"h": "a", "z": "1"}, 0), _rollup({"h": "a"}, 0)]
    assert [s.labels for s in evaluate(rollups, _query(aggregate="count"))] == [
        {"h": "a"},
        {"h": "a", "z": "1"},
        {"h": "b"},
    ]


def test_avg_of_zero_observations_gives_no_point():
    empty = MetricRollup(
        name="m", kind="gauge", start_ns=T0, interval_s=10, count=0, sum=0, min=0, max=0, last=3
    )
    assert evaluate([empty], _query(aggregate="avg")) == []
    assert evaluate([empty], _query(aggregate="last")) == [_series({}, [(T0, 3.0)])]


def test_last_breaks_ties_between_series_by_labels_whatever_the_input_order():
    a, b = _rollup({"h": "a"}, 5, values=(1.0,)), _rollup({"h": "b"}, 5, values=(2.0,))
    older = _rollup({"h": "c"}, 0, values=(9.0,))
    for rollups in ([a, b, older], [older, b, a]):
        assert evaluate(rollups, _query(aggregate="last", by=[])) == [_series({}, [(T0, 2.0)])]


def test_rate_divides_by_the_whole_range_or_the_step():
    rollups = [_rollup({}, 0, values=(30.0,)), _rollup({}, 45, values=(30.0,))]
    assert evaluate(rollups, _query(aggregate="rate")) == [_series({}, [(T0, 1.0)])]
    assert evaluate(rollups, _query(aggregate="rate", step_s=40)) == [
        _series({}, [(T0, 0.75), (T0 + 40 * SECOND, 1.5)])
    ]  # the last bucket holds 20 s of the range


def _sketch(*values: float, gamma: float | None = None) -> Sketch:
    sketch = LogSketch(gamma)
    for value in values:
        sketch.add(value)
    return sketch.to_model()


def test_percentile_uses_only_rollups_with_sketches():
    rollups = [_rollup({}, 0, values=(1000.0,)), _rollup({}, 1, sketch=_sketch(10.0, 20.0, 30.0))]
    ((_, value),) = evaluate(rollups, _query(aggregate="p50"))[0].points
    assert value == pytest.approx(20.0, rel=0.01)


def test_percentile_of_an_empty_sketch_gives_no_point():
    assert evaluate([_rollup({}, 0, sketch=_sketch())], _query(aggregate="p99")) == []


def test_percentile_of_negative_and_zero_values():
    rollups = [_rollup({}, 0, sketch=_sketch(-50.0, -40.0, -5.0)), _rollup({}, 1, sketch=_sketch(0.0, 7.0))]
    ((_, median),) = evaluate(rollups, _query(aggregate="p50"))[0].points
    assert median == pytest.approx(-5.0, rel=0.01)
    ((_, high),) = evaluate(rollups, _query(aggregate="p99"))[0].points  # rank 3.96 of 5: the zero
    assert high == 0.0


def test_sketches_with_different_layouts_are_a_query_error():
    rollups = [
        _rollup({}, 0, sketch=_sketch(1.0)),
        _rollup({}, 1, sketch=_sketch(1.0, gamma=gamma_for(0.05))),
    ]
    with pytest.raises(QueryError, match="sketch"):
        evaluate(rollups, _query(aggregate="p95"))


# -- cursors --------------------------------------------------------------------------------------


@given(st.integers(min_value=-(2**63), max_value=2**64 - 1), st.text(max_size=40))
def test_cursor_round_trips(number, text):
    cursor = encode_cursor((number, text))
    assert re.fullmatch(r"[A-Za-z0-9_-]*", cursor)
    assert decode_cursor(cursor, tuple[int, str]) == (number, text)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "%%%",
        "abc=def",
        encode_cursor((1, 2))[:-2],  # truncated
        encode_cursor(("text", 2)),  # wrong shape
        encode_cursor((1, "a", 3)),  # wrong length
        "A" * 2000,
    ],
    ids=[
        "empty",
        "spaces",
        "symbols",
        "padding-inside",
        "truncated",
        "wrong-type",
        "wrong-length",
        "too-long",
    ],
)
def test_bad_cursors_are_query_errors(cursor):
    with pytest.raises(QueryError, match="invalid cursor"):
        decode_cursor(cursor, tuple[int, int])


# -- log search goes through tocsin.storage.logquery ------------------------------------------------------


async def test_search_logs_applies_the_whole_query_language():
    storage = MemoryStorage()
    await storage.write_logs(
        [
            LogRecord(time_ns=T0, level="error", message="payment failed", service="billing"),
            LogRecord(time_ns=T0 + 1, level="error", message="payment failed again", service="shop"),
            LogRecord(time_ns=T0 + 2, level="info", message="payment retried", service="billing"),
        ]
    )
    page = await storage.search_logs(LogQuery(text="paym* -again service:billing level:warning+"))
    assert [(hit.record.message, hit.snippet) for hit in page.items] == [
        ("payment failed", "[payment] failed")
    ]
    with pytest.raises(QueryError):
        await storage.search_logs(LogQuery(text="-payment"))
