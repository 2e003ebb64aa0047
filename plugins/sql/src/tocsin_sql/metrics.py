"""Metric series, rollups and tiers: writing, listing, querying and retention.

Series ids are hashes of name and labels (`ids.series_id`), so a write never looks a series up: the series
row is inserted if missing and the rollups upserted, merging into an existing (series, start) as the
storage protocol says. Queries select the series of a name, filter them with the label matchers in Python
(`tocsin.storage.matchers`, the same code every backend uses), read the rows `tiers.plan` picks, and aggregate with
`tocsin.storage.rollups.evaluate`. A one-point query of a summable aggregate (what alert rules ask) has the
database total each series' rows (`GROUP BY series_id`), so Python sees one row per series, not per rollup.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from tocsin.ext import (
    QUANTILES,
    LabelPredicate,
    MetricInfo,
    MetricQuery,
    MetricRollup,
    SeriesPoints,
    UnstorableRecord,
    evaluate,
)
from tocsin_sql import codec, ids, meta
from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect, decode_sketch, encode_sketch
from tocsin_sql.schema import META_TIER_FLOOR, metric_rollups, metric_series, metric_tiers
from tocsin_sql.tiers import SECOND, TIER_WIDTHS_S, Range, RollupRow, fold, plan

KINDS = ("counter", "gauge", "histogram")
_MAX_RANGES = 8
"""Above this many ranges per table a query reads the span around them once and filters in Python."""
_SWEEP_CHUNK = 5000


class PreparedRollups(NamedTuple):
    """A batch of rollups as rows, computed before the write transaction starts."""

    series: list[tuple[int, str, str, str]]
    rollups: list[tuple[Any, ...]]
    tiers: list[tuple[Any, ...]]


def prepare(rollups: Sequence[MetricRollup]) -> PreparedRollups:
    """Rows for a batch: series, rollups and their tier folds; bad kinds or sketch mixes are a StorageError."""
    series: dict[int, tuple[int, str, str, str]] = {}
    rows: list[tuple[Any, ...]] = []
    folded: list[RollupRow] = []
    for rollup in rollups:
        if rollup.kind not in KINDS:
            raise UnstorableRecord(f"MetricRollup {rollup.name!r} kind {rollup.kind!r} is not one of "
                                   f"{', '.join(KINDS)}")
        labels = codec.to_json(rollup.labels)
        sid = ids.series_id(rollup.name, labels)
        series.setdefault(sid, (sid, rollup.name, rollup.kind, labels))
        sketch = encode_sketch(rollup.sketch)
        values = (rollup.count, rollup.sum, rollup.min, rollup.max, rollup.last)
        rows.append((sid, rollup.start_ns, rollup.interval_s, *values, sketch))
        folded.append(RollupRow(sid, rollup.start_ns, *values, rollup.sketch))
    return PreparedRollups(list(series.values()), rows, encode_tiers(fold(folded)))


def encode_tiers(folded: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Folded tier rows (`tiers.fold`) with their sketches in stored form."""
    return [(*row[:-1], encode_sketch(row[-1])) for row in folded]


def _insert_series(d: Dialect) -> sa.ClauseElement:
    return d.insert(metric_series).on_conflict_do_nothing(index_elements=[metric_series.c.id])


def _merge_values(d: Dialect, table: sa.Table, new: Any) -> dict[str, Any]:
    return {
        "count": table.c.count + new["count"],
        "sum": table.c.sum + new["sum"],
        "min": d.least(table.c.min, new["min"]),
        "max": d.greatest(table.c.max, new["max"]),
        "sketch": d.merge_sketches(table.c.sketch, new["sketch"]),
    }


def _upsert_rollup(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(metric_rollups)
    merged = {**_merge_values(d, metric_rollups, insert.excluded), "last": insert.excluded["last"]}
    return insert.on_conflict_do_update(index_elements=[metric_rollups.c.series_id, metric_rollups.c.start_ns],
                                        set_=merged)


def _upsert_tier(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(metric_tiers)
    new = insert.excluded
    newer = new.last_start_ns >= metric_tiers.c.last_start_ns
    merged = {
        **_merge_values(d, metric_tiers, new),
        "last": sa.case((newer, new["last"]), else_=metric_tiers.c["last"]),
        "last_start_ns": d.greatest(metric_tiers.c.last_start_ns, new.last_start_ns),
    }
    keys = [metric_tiers.c.series_id, metric_tiers.c.width_s, metric_tiers.c.start_ns]
    return insert.on_conflict_do_update(index_elements=keys, set_=merged)


def write(db: Database, prepared: PreparedRollups) -> None:
    """Store a prepared batch (inside the caller's write transaction)."""
    db.run_many(db.sql(_insert_series), prepared.series)
    db.run_many(db.sql(_upsert_rollup), prepared.rollups)
    write_tiers(db, prepared.tiers)


def write_tiers(db: Database, rows: Sequence[tuple[Any, ...]]) -> None:
    """Merge folded tier rows into metric_tiers."""
    db.run_many(db.sql(_upsert_tier), rows)


# -- reading ----------------------------------------------------------------------------------------------


def _list(_: Dialect) -> sa.Select:
    s = metric_series.c
    return sa.select(s.name, s.kind, s.labels).order_by(s.name, s.id)


def list_metrics(db: Database) -> list[MetricInfo]:
    """Every metric name with its kind, series count and label names, sorted by name."""
    infos: dict[str, MetricInfo] = {}
    labels: dict[str, set[str]] = {}
    for name, kind, text in db.fetch(db.sql(_list)):
        info = infos.get(name)
        if info is None:
            info = infos[name] = MetricInfo(name=name, kind=kind, series=0)
            labels[name] = set()
        info.series += 1
        labels[name].update(codec.from_json(text, dict[str, str]))
    for name, info in infos.items():
        info.label_names = sorted(labels[name])
    return list(infos.values())


def _series_of(_: Dialect) -> sa.Select:
    s = metric_series.c
    return sa.select(s.id, s.kind, s.labels).where(s.name == sa.bindparam("name"))


def _in_list(count: int) -> list[sa.BindParameter]:
    return [sa.bindparam(f"s{i}") for i in range(count)]


def _rollup_rows(_: Dialect, count: int, sketch: bool) -> sa.Select:
    r = metric_rollups.c
    columns = [r.series_id, r.start_ns, r.interval_s, r.count, r.sum, r.min, r.max, r["last"]]
    return sa.select(*columns, r.sketch if sketch else sa.null(), r.start_ns).where(
        r.series_id.in_(_in_list(count)), r.start_ns >= sa.bindparam("lo"), r.start_ns < sa.bindparam("hi")
    )


def _tier_rows(_: Dialect, count: int, sketch: bool) -> sa.Select:
    t = metric_tiers.c
    columns = [t.series_id, t.last_start_ns, t.width_s, t.count, t.sum, t.min, t.max, t["last"]]
    return sa.select(*columns, t.sketch if sketch else sa.null(), t.start_ns).where(
        t.series_id.in_(_in_list(count)),
        t.width_s == sa.bindparam("width_s"),
        t.start_ns >= sa.bindparam("lo"),
        t.start_ns < sa.bindparam("hi"),
    )


_SUMMED = frozenset({"avg", "sum", "count", "min", "max", "rate"})
"""Aggregates computed from per-series totals (count, sum, min, max): one SQL row per series, not per rollup."""


def _summed_rows(_: Dialect, count: int, tier: bool) -> sa.Select:
    """Per series: the earliest start, Σcount, Σsum, min of min, max of max of its rows in [lo, hi)."""
    t = metric_tiers.c if tier else metric_rollups.c
    where = [t.series_id.in_(_in_list(count)), t.start_ns >= sa.bindparam("lo"), t.start_ns < sa.bindparam("hi")]
    if tier:
        where.append(t.width_s == sa.bindparam("width_s"))
    total = sa.cast(sa.func.sum(t.count), sa.BigInteger)  # PostgreSQL sums bigints as numeric
    return (sa.select(t.series_id, sa.func.min(t.start_ns), total, sa.func.sum(t.sum), sa.func.min(t.min),
                      sa.func.max(t.max)).where(*where).group_by(t.series_id))


def _summed(db: Database, series: list[int], ranges: list[Range], tier: bool, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of `_summed_rows` for every chunk of series and every range (a series may get several)."""
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(series):
        statement = db.sql(_summed_rows, len(chunk), tier)
        values = {f"s{i}": sid for i, sid in enumerate(chunk)}
        for lo, hi in ranges:
            rows += db.fetch(statement, {**values, **params, "lo": lo, "hi": hi})
    return rows


def _chunks(series: list[int]) -> list[list[int]]:
    """Series ids in chunks padded to a power of two, so only a few statement shapes are ever compiled."""
    chunks = []
    for i in range(0, len(series), 512):
        chunk = series[i : i + 512]
        size = 1 << (len(chunk) - 1).bit_length()
        chunks.append(chunk + [chunk[-1]] * (size - len(chunk)))
    return chunks


def _read(
    db: Database,
    build: Callable[..., sa.Select],
    series: list[int],
    ranges: list[Range],
    sketch: bool,
    **params: Any,
) -> list[tuple[Any, ...]]:
    """Rows of the given series whose rollup or window start (the last column) lies in one of `ranges`."""
    spans = ranges if len(ranges) <= _MAX_RANGES else [(ranges[0][0], ranges[-1][1])]
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(series):
        statement = db.sql(build, len(chunk), sketch)
        for lo, hi in spans:
            values = {f"s{i}": sid for i, sid in enumerate(chunk)}
            rows += db.fetch(statement, {**values, **params, "lo": lo, "hi": hi})
    if spans is ranges:
        return rows
    starts = [lo for lo, _ in ranges]
    return [row for row in rows if row[-1] < ranges[bisect_right(starts, row[-1]) - 1][1]]


def query(db: Database, metric_query: MetricQuery, matches: LabelPredicate) -> list[SeriesPoints]:
    """Aggregate the rollups of the matching series as `metric_query` asks (`tocsin.storage.rollups.evaluate`)."""
    labels: dict[int, tuple[str, dict[str, str]]] = {}
    for sid, kind, text in db.fetch(db.sql(_series_of), {"name": metric_query.name}):
        series_labels = codec.from_json(text, dict[str, str])
        if matches(series_labels):
            labels[sid] = kind, series_labels
    if not labels:
        return []
    start, end = metric_query.start_ns, metric_query.end_ns
    step = end - start if metric_query.step_s is None else round(metric_query.step_s * SECOND)
    floor = meta.get(db, META_TIER_FLOOR, None)
    coverage = plan(start, end, step, floor)
    selected = sorted(labels)
    if metric_query.step_s is None and metric_query.aggregate in _SUMMED:
        # One point for the whole range: the database sums each series' rows, Python only groups the series.
        rows = _summed(db, selected, coverage.rollups, False)
        for width_s, ranges in coverage.tiers.items():
            rows += _summed(db, selected, ranges, True, width_s=width_s)
        return evaluate([MetricRollup(name=metric_query.name, kind=labels[row[0]][0], labels=labels[row[0]][1],
                                      start_ns=row[1], interval_s=0.0, count=row[2], sum=row[3], min=row[4],
                                      max=row[5], last=0.0)
                         for row in rows], metric_query)
    sketch = metric_query.aggregate in QUANTILES
    rows = _read(db, _rollup_rows, selected, coverage.rollups, sketch) if coverage.rollups else []
    for width_s, ranges in coverage.tiers.items():
        rows += _read(db, _tier_rows, selected, ranges, sketch, width_s=width_s)
    return evaluate([_rollup(metric_query.name, *labels[row[0]], row) for row in rows], metric_query)


def _rollup(name: str, kind: str, labels: dict[str, str], row: tuple[Any, ...]) -> MetricRollup:
    """A rollup back from a row of `_rollup_rows` or `_tier_rows`."""
    return MetricRollup(name=name, kind=kind, labels=labels, start_ns=row[1], interval_s=row[2], count=row[3],
                        sum=row[4], min=row[5], max=row[6], last=row[7], sketch=decode_sketch(row[8]))


def read_rollups(db: Database, name: str, start_ns: int, end_ns: int) -> list[MetricRollup]:
    """Every series' rollups of `name` (the raw ones, not tiers) that start in [start_ns, end_ns), by start."""
    series = {sid: (kind, codec.from_json(text, dict[str, str]))
              for sid, kind, text in db.fetch(db.sql(_series_of), {"name": name})}
    if not series:
        return []
    rows = _read(db, _rollup_rows, sorted(series), [(start_ns, end_ns)], True)
    rows.sort(key=lambda row: row[1])
    return [_rollup(name, *series[row[0]], row) for row in rows]


# -- retention --------------------------------------------------------------------------------------------


def _series_ids(_: Dialect) -> sa.Select:
    return sa.select(metric_series.c.id)


def _chunk_bound(_: Dialect) -> sa.Select:
    r = metric_rollups.c
    return (
        sa.select(r.start_ns)
        .where(r.series_id == sa.bindparam("sid"), r.start_ns < sa.bindparam("cutoff"))
        .order_by(r.start_ns)
        .offset(sa.bindparam("chunk"))
        .limit(1)
    )


def _delete_rollups(_: Dialect) -> sa.Delete:
    r = metric_rollups.c
    return sa.delete(metric_rollups).where(r.series_id == sa.bindparam("sid"), r.start_ns < sa.bindparam("before"))


def _delete_tiers(_: Dialect) -> sa.Delete:
    return sa.delete(metric_tiers).where(metric_tiers.c.start_ns < sa.bindparam("floor"))


def _delete_empty_series(_: Dialect) -> sa.Delete:
    has_rollups = sa.select(metric_rollups.c.series_id).where(metric_rollups.c.series_id == metric_series.c.id)
    return sa.delete(metric_series).where(~sa.exists(has_rollups))


def series_ids(db: Database) -> list[int]:
    """Every series id (a retention sweep walks them one chunk at a time)."""
    return [row[0] for row in db.fetch(db.sql(_series_ids))]


def sweep_series(db: Database, series: int, cutoff_ns: int) -> tuple[int, bool]:
    """Delete up to one chunk of a series' rollups older than the cutoff; (deleted, whether more are left)."""
    bound = db.fetch_one(db.sql(_chunk_bound), {"sid": series, "cutoff": cutoff_ns, "chunk": _SWEEP_CHUNK})
    before = cutoff_ns if bound is None else bound[0]
    return db.run(db.sql(_delete_rollups), {"sid": series, "before": before}), bound is not None


def sweep_tiers(db: Database, cutoff_ns: int) -> None:
    """Drop tier rows below the hour boundary above the cutoff, raise the tier floor, drop empty series."""
    floor = -(-cutoff_ns // (TIER_WIDTHS_S[-1] * SECOND)) * TIER_WIDTHS_S[-1] * SECOND
    meta.raise_to(db, META_TIER_FLOOR, floor)
    db.run(db.sql(_delete_tiers), {"floor": floor})
    db.run(db.sql(_delete_empty_series))
