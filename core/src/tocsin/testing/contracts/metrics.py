"""Contract tests for metric rollups: range and step aggregates, label matchers, percentiles and listing."""

from __future__ import annotations

from typing import Any

import pytest

from tocsin.errors import QueryError
from tocsin.models import LabelMatcher, SeriesPoints
from tocsin.storage.protocol import MetricQuery
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import API_A, API_B, WEB_A, WHOLE_RANGE, approx_points, make_rollup, ns_at


class MetricsContract(ContractBase):
    """Metric writes and queries, checked against aggregates worked out by hand from `LATENCY`."""

    async def _query(self, backend: Any, **fields: Any) -> list[SeriesPoints]:
        fields.setdefault("name", "latency")
        fields.setdefault("start_ns", ns_at(0))
        fields.setdefault("end_ns", ns_at(30))
        return await backend.query_metrics(MetricQuery(**fields))

    @pytest.mark.parametrize("aggregate", sorted(WHOLE_RANGE))
    async def test_metric_whole_range_aggregates(self, backend, aggregate):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate=aggregate)
        expected = WHOLE_RANGE[aggregate]
        assert approx_points(result) == [
            (API_A, [(ns_at(0), expected[0])]),
            (WEB_A, [(ns_at(0), expected[1])]),
            (API_B, [(ns_at(0), expected[2])]),
        ]

    @pytest.mark.parametrize(
        ("aggregate", "api_a", "api_b"),
        [
            ("avg", [2.0, 4.0, 5.5], [10.0, 25.0]),
            ("sum", [6.0, 4.0, 11.0], [10.0, 50.0]),
            ("count", [3.0, 1.0, 2.0], [1.0, 2.0]),
            ("min", [1.0, 4.0, 5.0], [10.0, 20.0]),
            ("max", [3.0, 4.0, 6.0], [10.0, 30.0]),
            ("last", [3.0, 4.0, 6.0], [10.0, 30.0]),
            ("rate", [0.6, 0.4, 1.1], [1.0, 5.0]),
        ],
    )
    async def test_metric_steps_aligned_to_start_skip_empty_buckets(self, backend, aggregate, api_a, api_b):
        await self._write_latency(backend)
        result = await self._query(
            backend, aggregate=aggregate, step_s=10, matchers=[LabelMatcher(label="service", value="api")]
        )
        assert approx_points(result) == [
            (API_A, [(ns_at(0), api_a[0]), (ns_at(10), api_a[1]), (ns_at(20), api_a[2])]),
            (API_B, [(ns_at(0), api_b[0]), (ns_at(20), api_b[1])]),  # no rollup in [10s, 20s): no point
        ]

    async def test_metric_rate_uses_the_bucket_cut_at_the_range_end(self, backend):
        await self._write_latency(backend)
        result = await self._query(
            backend,
            aggregate="rate",
            step_s=20,
            matchers=[LabelMatcher(label="route", value="/a"), LabelMatcher(label="service", value="api")],
        )
        # [0s, 20s) holds 1+2+3+4 = 10 over 20 s; [20s, 30s) holds 5+6 = 11 over the 10 s left in range
        assert approx_points(result) == [(API_A, [(ns_at(0), 0.5), (ns_at(20), 1.1)])]

    async def test_metric_step_buckets_align_to_start_ns(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="sum", start_ns=ns_at(5), step_s=10, by=[])
        # buckets [5s, 15s) and [15s, 25s): the rollups at 0s fall before the range
        assert approx_points(result) == [({}, [(ns_at(5), 104.0), (ns_at(15), 61.0)])]

    async def test_metric_range_includes_start_and_excludes_end(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="count", start_ns=ns_at(10), end_ns=ns_at(20), by=[])
        assert approx_points(result) == [({}, [(ns_at(10), 2.0)])]

    async def test_metric_group_by_label(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="avg", by=["service"])
        assert approx_points(result) == [
            ({"service": "api"}, [(ns_at(0), 9.0)]),
            ({"service": "web"}, [(ns_at(0), 100.0)]),
        ]

    async def test_metric_group_by_nothing_merges_every_series(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="sum", by=[])
        assert approx_points(result) == [({}, [(ns_at(0), 181.0)])]

    async def test_metric_group_by_keeps_series_apart_by_default(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="count")
        assert [s.labels for s in result] == [API_A, WEB_A, API_B]

    @pytest.mark.parametrize(
        ("matcher", "expected"),
        [
            (LabelMatcher(label="service", op="=", value="api"), [API_A, API_B]),
            (LabelMatcher(label="service", op="!=", value="api"), [WEB_A]),
            (LabelMatcher(label="route", op="=~", value="/a|/c"), [API_A, WEB_A]),
            (LabelMatcher(label="route", op="=~", value="/"), []),  # regexes match the whole value
            (LabelMatcher(label="route", op="!~", value="/b"), [API_A, WEB_A]),
            (LabelMatcher(label="route", op="!~", value="/.*"), []),
            (LabelMatcher(label="env", op="=", value=""), [API_A, WEB_A, API_B]),  # missing label is ""
            (LabelMatcher(label="env", op="!=", value=""), []),
        ],
        ids=["eq", "ne", "re", "re-full-match", "nre", "nre-all", "missing-eq-empty", "missing-ne-empty"],
    )
    async def test_metric_label_matchers(self, backend, matcher, expected):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="count", matchers=[matcher])
        assert [s.labels for s in result] == expected

    async def test_metric_matchers_all_must_hold(self, backend):
        await self._write_latency(backend)
        result = await self._query(
            backend,
            aggregate="count",
            matchers=[
                LabelMatcher(label="service", value="api"),
                LabelMatcher(label="route", op="!=", value="/a"),
            ],
        )
        assert [s.labels for s in result] == [API_B]

    async def test_metric_invalid_regex_is_a_query_error(self, backend):
        await self._write_latency(backend)
        with pytest.raises(QueryError, match="route"):
            await self._query(backend, matchers=[LabelMatcher(label="route", op="=~", value="(unclosed")])

    @pytest.mark.parametrize(("aggregate", "q"), [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)])
    async def test_metric_percentiles_merge_sketches_within_one_percent(self, backend, aggregate, q):
        values = [float((i * 7919) % 1000 + 1) for i in range(1000)]  # 1..1000 shuffled
        await backend.write_metrics(
            [make_rollup("payload", {"host": f"h{i % 2}"}, i, values[i * 100 : (i + 1) * 100]) for i in range(10)]
        )
        result = await backend.query_metrics(
            MetricQuery(name="payload", start_ns=ns_at(0), end_ns=ns_at(10), aggregate=aggregate, by=[])
        )
        exact = sorted(values)[int(q * (len(values) - 1))]
        assert len(result) == 1
        assert len(result[0].points) == 1
        assert result[0].points[0][1] == pytest.approx(exact, rel=0.01)

    async def test_metric_percentiles_per_step(self, backend):
        await self._write_latency(backend)
        result = await self._query(
            backend, aggregate="p50", step_s=10, matchers=[LabelMatcher(label="route", value="/b")]
        )
        (series,) = result
        assert [t for t, _ in series.points] == [ns_at(0), ns_at(20)]
        assert series.points[0][1] == pytest.approx(10.0, rel=0.01)
        assert series.points[1][1] == pytest.approx(20.0, rel=0.01)

    async def test_metric_percentile_without_sketches_gives_no_point(self, backend):
        await backend.write_metrics([make_rollup("requests", API_A, 0, [1.0, 1.0], kind="counter", sketch=False)])
        assert await self._query(backend, name="requests", aggregate="p99") == []
        assert approx_points(await self._query(backend, name="requests", aggregate="sum")) == [
            (API_A, [(ns_at(0), 2.0)])
        ]

    async def test_metric_unknown_name_and_empty_range_give_nothing(self, backend):
        await self._write_latency(backend)
        assert await self._query(backend, name="no_such_metric") == []
        assert await self._query(backend, start_ns=ns_at(100), end_ns=ns_at(200)) == []

    async def test_metric_malformed_queries_are_query_errors(self, backend):
        await self._write_latency(backend)
        with pytest.raises(QueryError, match="end_ns"):
            await self._query(backend, start_ns=ns_at(30), end_ns=ns_at(30))
        with pytest.raises(QueryError, match="step_s"):
            await self._query(backend, step_s=0)
        with pytest.raises(QueryError, match="step_s"):
            await self._query(backend, step_s=1e-6, end_ns=ns_at(3600))

    async def test_metric_rollup_written_twice_is_merged(self, backend):
        first = make_rollup("latency", API_A, 0, [5.0, 7.0])
        second = make_rollup("latency", API_A, 0, [1.0, 9.0, 3.0])
        await backend.write_metrics([first])
        await backend.write_metrics([second])
        values = {}
        for aggregate in ("count", "sum", "min", "max", "last", "p50"):
            (series,) = await self._query(backend, aggregate=aggregate)
            values[aggregate] = series.points
        assert values["count"] == [(ns_at(0), 5.0)]
        assert values["sum"] == [(ns_at(0), 25.0)]
        assert values["min"] == [(ns_at(0), 1.0)]
        assert values["max"] == [(ns_at(0), 9.0)]
        assert values["last"] == [(ns_at(0), 3.0)]
        assert values["p50"][0][1] == pytest.approx(
            5.0, rel=0.01
        )  # median of 1 3 5 7 9: both sketches merged
        assert (await backend.list_metrics())[0].series == 1

    async def test_list_metrics(self, backend):
        assert await backend.list_metrics() == []
        await self._write_latency(backend)
        await backend.write_metrics(
            [
                make_rollup("errors", {"service": "api", "code": "500"}, 0, [1.0], kind="counter"),
                make_rollup("errors", {"service": "api", "code": "500"}, 10, [2.0], kind="counter"),
                make_rollup("cpu", {"host": "h1"}, 0, [0.5], kind="gauge"),
            ]
        )
        infos = await backend.list_metrics()
        assert [(i.name, i.kind, i.series, i.label_names) for i in infos] == [
            ("cpu", "gauge", 1, ["host"]),
            ("errors", "counter", 1, ["code", "service"]),
            ("latency", "histogram", 3, ["route", "service"]),
        ]
