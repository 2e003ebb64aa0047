"""Contract tests for logs: id assignment, word and phrase search, filters, pagination and concurrent writers."""

from __future__ import annotations

import asyncio

import pytest

from tocsin.errors import QueryError
from tocsin.storage.protocol import LogQuery
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import every_page, make_log, ns_at, sid, tid


class LogsContract(ContractBase):
    """Log writes and `search_logs`, newest first, with the text, level and id filters every backend supports."""

    async def test_write_logs_assigns_growing_ids(self, backend):
        await self._write_log_set(backend)
        page = await backend.search_logs(LogQuery())
        by_time = sorted(page.items, key=lambda hit: hit.record.time_ns)
        ids = [hit.record.id for hit in by_time]
        assert all(isinstance(i, int) for i in ids)
        assert ids == sorted(ids)
        assert len(set(ids)) == 5
        await backend.write_logs([make_log("later", 5)])
        newest = (await backend.search_logs(LogQuery(limit=1))).items[0].record
        assert newest.id > max(ids)

    async def test_search_logs_newest_first_even_when_written_out_of_order(self, backend):
        await backend.write_logs([make_log("second", 2), make_log("third", 3), make_log("first", 1)])
        assert await self._search(backend) == ["third", "second", "first"]

    async def test_search_logs_without_text_matches_all_with_plain_snippets(self, backend):
        await self._write_log_set(backend)
        page = await backend.search_logs(LogQuery())
        assert page.total == 5
        assert [hit.snippet for hit in page.items] == [hit.record.message for hit in page.items]
        assert page.items[0].record.message == "disk almost full"

    async def test_search_logs_by_word(self, backend):
        await self._write_log_set(backend)
        page = await backend.search_logs(LogQuery(text="payment"))
        assert [hit.record.message for hit in page.items] == [
            "failed payment retried for order 7",
            "payment failed for order 7",
        ]
        assert all("[payment]" in hit.snippet for hit in page.items)
        assert page.total == 2

    async def test_search_logs_words_must_all_appear(self, backend):
        await self._write_log_set(backend)
        assert await self._search(backend, text="order failed") == [
            "failed payment retried for order 7",
            "payment failed for order 7",
        ]
        assert await self._search(backend, text="order disk") == []

    async def test_search_logs_by_phrase(self, backend):
        await self._write_log_set(backend)
        assert await self._search(backend, text='"payment failed"') == ["payment failed for order 7"]

    @pytest.mark.parametrize(
        ("level", "expected"),
        [
            ("debug", 5),
            ("info", 4),
            ("warning", 3),
            ("error", 2),
            ("critical", 1),
        ],
    )
    async def test_search_logs_level_is_a_minimum(self, backend, level, expected):
        await self._write_log_set(backend)
        page = await backend.search_logs(LogQuery(level=level))
        assert page.total == expected
        assert len(page.items) == expected

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"service": "billing"}, ["failed payment retried for order 7", "payment failed for order 7"]),
            ({"trace_id": tid(1)}, ["cache miss for user 42", "payment failed for order 7"]),
            ({"span_id": sid(12)}, ["cache miss for user 42"]),
            ({"execution_id": "run-1"}, ["disk almost full", "payment failed for order 7"]),
            (
                {"start_ns": ns_at(1), "end_ns": ns_at(3)},
                ["cache miss for user 42", "payment failed for order 7"],
            ),
            ({"start_ns": ns_at(4)}, ["disk almost full"]),
            ({"end_ns": ns_at(1)}, ["service started on port 8000"]),
            ({"text": "order", "level": "error", "service": "billing"}, ["payment failed for order 7"]),
        ],
        ids=["service", "trace", "span", "execution", "range", "from", "until", "combined"],
    )
    async def test_search_logs_filters(self, backend, fields, expected):
        await self._write_log_set(backend)
        assert await self._search(backend, **fields) == expected

    async def test_search_logs_paginates_with_total(self, backend):
        await backend.write_logs([make_log(f"tick {n}", n // 4) for n in range(23)])  # ties on time
        await backend.write_logs([make_log(f"tock {n}", 100 + n) for n in range(4)])
        pages = await every_page(
            lambda cursor: backend.search_logs(LogQuery(text="tick", limit=10, cursor=cursor))
        )
        assert [len(page) for page in pages] == [10, 10, 3]
        hits = [hit for page in pages for hit in page]
        assert sorted(hit.record.message for hit in hits) == sorted(f"tick {n}" for n in range(23))
        keys = [(hit.record.time_ns, hit.record.id) for hit in hits]
        assert keys == sorted(keys, reverse=True)
        first = await backend.search_logs(LogQuery(text="tick", limit=10))
        assert first.total == 23

    async def test_search_logs_rejects_bad_cursor_and_limit(self, backend):
        await self._write_log_set(backend)
        with pytest.raises(QueryError, match="cursor"):
            await backend.search_logs(LogQuery(cursor="%%%"))
        with pytest.raises(QueryError, match="limit"):
            await backend.search_logs(LogQuery(limit=0))

    @pytest.mark.parametrize(
        ("fields", "named"),
        [
            ({"end_ns": 2**64}, "end_ns"),
            ({"text": "disk", "end_ns": 2**64}, "end_ns"),
            ({"start_ns": 2**63}, "start_ns"),
            ({"start_ns": -(2**63) - 1}, "start_ns"),
            ({"service": "\ud800"}, "service"),
            ({"execution_id": "x\udcffy"}, "execution_id"),
            ({"trace_id": "\udfff"}, "trace_id"),
            ({"text": "disk \ud800"}, "text"),
            ({"limit": 0}, "limit"),
            ({"limit": 10_001}, "limit"),
            ({"limit": 10**9}, "limit"),
        ],
        ids=[
            "end-past-int64",
            "text-end-past-int64",
            "start-past-int64",
            "start-below-int64",
            "service-surrogate",
            "execution-surrogate",
            "trace-surrogate",
            "text-surrogate",
            "limit-0",
            "limit-10001",
            "limit-1e9",
        ],
    )
    async def test_search_logs_rejects_values_out_of_range_naming_the_field(self, backend, fields, named):
        await self._write_log_set(backend)
        with pytest.raises(QueryError, match=named):
            await backend.search_logs(LogQuery(**fields))

    async def test_search_logs_accepts_the_extremes_of_every_range(self, backend):
        await self._write_log_set(backend)
        page = await backend.search_logs(LogQuery(start_ns=-(2**63), end_ns=2**63 - 1, limit=10_000))
        assert page.total == 5
        assert len(page.items) == 5
        assert (await backend.search_logs(LogQuery(text="disk", limit=10_000))).total == 1

    async def test_concurrent_log_writers_get_distinct_ids(self, backend):
        batches = [[make_log(f"writer {w} line {n}", n) for n in range(20)] for w in range(5)]
        await asyncio.gather(*(backend.write_logs(batch) for batch in batches))
        page = await backend.search_logs(LogQuery(limit=1000))
        assert page.total == 100
        assert len({hit.record.id for hit in page.items}) == 100
