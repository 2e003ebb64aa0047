"""Contract tests for spans: replacing running spans, whole traces, and filtered, paginated span search."""

from __future__ import annotations

import pytest

from tocsin.errors import QueryError
from tocsin.models import Span, SpanEvent, SpanLink
from tocsin.storage.protocol import SpanQuery
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import SECOND, every_page, make_span, ns_at, sid, tid


class TracesContract(ContractBase):
    """Span writes, `get_trace` and `search_spans`, including cursor pagination over tied start times."""

    async def test_running_span_is_replaced_by_its_completed_version(self, backend):
        await backend.write_spans([make_span(1, duration_s=None, status="unset")])
        (running,) = await backend.get_trace(tid(1))
        assert running.end_ns is None
        await backend.write_spans([make_span(1, duration_s=2.5, status="error", attributes={"http.status": 500})])
        (done,) = await backend.get_trace(tid(1))
        assert (done.end_ns, done.status, done.attributes) == (ns_at(2.5), "error", {"http.status": 500})
        page = await backend.search_spans(SpanQuery())
        assert [s.span_id for s in page.items] == [sid(1)]

    async def test_running_span_renamed_before_it_ends_is_still_replaced(self, backend):
        # the same span (trace, span id and start) written again: a later write updates it, name included
        await backend.write_spans([make_span(1, name="GET", duration_s=None, status="unset")])
        await backend.write_spans([make_span(1, name="GET /users/{id}", duration_s=2.0)])
        (done,) = await backend.get_trace(tid(1))
        assert (done.name, done.end_ns, done.status) == ("GET /users/{id}", ns_at(2.0), "ok")

    async def test_a_different_span_with_a_stored_span_id_never_overwrites_it(self, backend):
        first = make_span(1, name="GET /", start_s=0, duration_s=1.0, attributes={"run": 1})
        await backend.write_spans([first])
        # same span id, but another trace / another start: another span whose id collided (e.g. a reseeded RNG)
        await backend.write_spans([make_span(1, trace=2, name="GET /", start_s=0, attributes={"run": 2})])
        await backend.write_spans([make_span(1, name="GET /", start_s=5, attributes={"run": 3})])
        await backend.write_spans(
            [make_span(1, trace=3, name="POST /", start_s=9, attributes={"run": 4}), make_span(2, trace=3)]
        )
        assert await backend.get_trace(tid(1)) == [first]
        assert await backend.get_trace(tid(2)) == []
        assert [s.span_id for s in await backend.get_trace(tid(3))] == [sid(2)]  # the rest of a batch is stored
        page = await backend.search_spans(SpanQuery())
        assert sorted((s.trace_id, s.span_id, s.attributes.get("run")) for s in page.items) == [
            (tid(1), sid(1), 1),
            (tid(3), sid(2), None),
        ]

    async def test_span_round_trips_every_field(self, backend):
        span = Span(
            trace_id=tid(7),
            span_id=sid(7),
            parent_span_id=sid(6),
            name="charge",
            service="billing",
            kind="client",
            start_ns=ns_at(1),
            end_ns=ns_at(2),
            status="error",
            status_message="card declined",
            attributes={"amount": 12.5, "retry": 2, "tags": ["a", "b"], "ok": False},
            events=[SpanEvent(name="exception", time_ns=ns_at(1.5), attributes={"type": "ValueError"})],
            links=[SpanLink(trace_id=tid(8), span_id=sid(8), attributes={"why": "retry of"})],
        )
        await backend.write_spans([span])
        assert await backend.get_trace(tid(7)) == [span]

    async def test_get_trace_orders_by_start_and_unknown_is_empty(self, backend):
        await backend.write_spans(
            [
                make_span(3, parent=1, start_s=2),
                make_span(1, start_s=0, duration_s=5),
                make_span(2, parent=1, start_s=1),
                make_span(9, trace=2, start_s=0),
            ]
        )
        assert [s.span_id for s in await backend.get_trace(tid(1))] == [sid(1), sid(2), sid(3)]
        assert await backend.get_trace(tid(99)) == []

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (SpanQuery(), [5, 4, 3, 2, 1]),
            (SpanQuery(service="db"), [4, 2]),
            (SpanQuery(name="GET /users"), [5, 1]),
            (SpanQuery(status="error"), [3]),
            (SpanQuery(min_duration_ns=2 * SECOND), [4, 3]),  # inclusive; running spans have no duration
            (SpanQuery(max_duration_ns=SECOND // 2), [2, 1]),
            (SpanQuery(attributes={"db.table": "orders"}), [4]),
            (SpanQuery(attributes={"http.status": 500}), [3]),
            (SpanQuery(start_ns=ns_at(1), end_ns=ns_at(4)), [4, 3, 2]),  # start in [start_ns, end_ns)
            (SpanQuery(root_only=True), [5, 3, 1]),
            (SpanQuery(service="api", root_only=True, status="ok"), [1]),
        ],
        ids=[
            "all",
            "service",
            "name",
            "status",
            "min-duration",
            "max-duration",
            "attribute-str",
            "attribute-int",
            "time-range",
            "root-only",
            "combined",
        ],
    )
    async def test_search_spans_filters_newest_first(self, backend, query, expected):
        await self._write_span_set(backend)
        page = await backend.search_spans(query)
        assert [s.span_id for s in page.items] == [sid(n) for n in expected]
        assert page.next_cursor is None

    async def test_search_spans_paginates_without_duplicates_or_gaps(self, backend):
        # 25 spans, several sharing a start time, so the cursor must break ties
        await backend.write_spans([make_span(n, trace=n, start_s=n // 3) for n in range(1, 26)])
        pages = await every_page(lambda cursor: backend.search_spans(SpanQuery(limit=10, cursor=cursor)))
        assert [len(page) for page in pages] == [10, 10, 5]
        spans = [span for page in pages for span in page]
        assert sorted(s.span_id for s in spans) == sorted(sid(n) for n in range(1, 26))
        starts = [s.start_ns for s in spans]
        assert starts == sorted(starts, reverse=True)

    async def test_search_spans_exact_page_has_no_next_cursor(self, backend):
        await backend.write_spans([make_span(n, start_s=n) for n in range(1, 5)])
        first = await backend.search_spans(SpanQuery(limit=2))
        second = await backend.search_spans(SpanQuery(limit=2, cursor=first.next_cursor))
        assert [s.span_id for s in first.items + second.items] == [sid(n) for n in (4, 3, 2, 1)]
        assert second.next_cursor is None

    async def test_search_spans_rejects_a_bad_cursor(self, backend):
        await self._write_span_set(backend)
        with pytest.raises(QueryError, match="cursor"):
            await backend.search_spans(SpanQuery(cursor="not a cursor!"))

    async def test_spans_are_counted_by_service_and_by_name_in_a_range(self, backend):
        count = getattr(backend, "count_spans_by", None)
        if count is None:
            pytest.skip("this backend has no count_spans_by (optional: the API then reads the newest spans)")
        await backend.write_spans([
            make_span(1, service="api", name="GET /", start_s=0),
            make_span(2, service="api", name="GET /", start_s=1, duration_s=None, status="unset"),  # running
            make_span(3, service="api", name="POST /", start_s=2),
            make_span(4, service="billing", name="charge", start_s=3),
            make_span(5, service="billing", name="charge", start_s=10),  # at the end: outside
        ])
        assert await count("service", ns_at(0), ns_at(10)) == {"api": 3, "billing": 1}
        assert await count("name", ns_at(0), ns_at(10), service="api") == {"GET /": 2, "POST /": 1}
        assert await count("name", ns_at(1), ns_at(3)) == {"GET /": 1, "POST /": 1}
        assert await count("name", ns_at(0), ns_at(11), service="nobody") == {}
        assert await count("service", ns_at(20), ns_at(30)) == {}
        with pytest.raises(QueryError, match="counted by service or name, not 'status'"):
            await count("status", ns_at(0), ns_at(10))
