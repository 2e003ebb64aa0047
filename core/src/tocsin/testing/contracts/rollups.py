"""Contract tests for reading stored rollups back as they are (`read_rollups`, what alerting warms its windows
from): equal to what was written, merged per (series, start), exact range bounds, ordered by start.

`read_rollups` is optional in practice (alerting checks for it), so a backend without it skips these tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from tocsin.models import MetricRollup
from tocsin.signals.sketch import LogSketch
from tocsin.storage.rollups import labels_key
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import API_A, LATENCY, make_rollup, ns_at


def _by_series_and_start(rollups: list[MetricRollup]) -> list[MetricRollup]:
    return sorted(rollups, key=lambda rollup: (rollup.start_ns, labels_key(rollup.labels)))


class RollupReadsContract(ContractBase):
    """`read_rollups` against the `LATENCY` rollups and rollups written twice."""

    async def _read(self, backend: Any, start_s: float, end_s: float, name: str = "latency") -> list[MetricRollup]:
        read = getattr(backend, "read_rollups", None)
        if read is None:
            pytest.skip("this backend has no read_rollups (optional: alerting then skips warming its windows)")
        return await read(name, ns_at(start_s), ns_at(end_s))

    async def test_rollups_read_back_equal_to_what_was_written_ordered_by_start(self, backend):
        await self._write_latency(backend)
        await backend.write_metrics([make_rollup("errors", API_A, 0, [1.0], kind="counter", sketch=False)])
        read = await self._read(backend, 0, 30)
        assert [rollup.start_ns for rollup in read] == sorted(rollup.start_ns for rollup in read)
        written = [make_rollup("latency", labels, at, values) for labels, at, values in LATENCY]
        assert _by_series_and_start(read) == _by_series_and_start(written)  # sketches, kind and interval too
        assert await self._read(backend, 0, 30, name="errors") == [
            make_rollup("errors", API_A, 0, [1.0], kind="counter", sketch=False)
        ]
        assert await self._read(backend, 0, 30, name="no_such_metric") == []

    async def test_rollups_read_range_includes_start_and_excludes_end(self, backend):
        await self._write_latency(backend)
        assert {rollup.start_ns for rollup in await self._read(backend, 10, 20)} == {ns_at(10)}
        assert len(await self._read(backend, 10, 20)) == 2  # api /a and web /a
        assert await self._read(backend, 0, 0) == []
        assert await self._read(backend, 20.000000001, 40) == []  # one nanosecond after the last start

    async def test_rollups_written_twice_read_back_merged(self, backend):
        first = make_rollup("latency", API_A, 0, [5.0, 7.0])
        second = make_rollup("latency", API_A, 0, [1.0, 9.0, 3.0])
        await backend.write_metrics([first])
        await backend.write_metrics([second])
        assert first.sketch is not None and second.sketch is not None
        sketch = LogSketch.from_model(first.sketch)
        sketch.merge(second.sketch)
        (merged,) = await self._read(backend, 0, 10)
        assert (merged.count, merged.sum, merged.min, merged.max, merged.last) == (5, 25.0, 1.0, 9.0, 3.0)
        assert merged.sketch == sketch.to_model() and merged.labels == API_A and merged.start_ns == ns_at(0)
