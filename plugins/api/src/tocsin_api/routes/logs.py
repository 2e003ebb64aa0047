"""`/api/v1` logs endpoints: search with the log query language, and ingest records made elsewhere."""

from __future__ import annotations

import time

from litestar import get, post
from litestar.params import FromQuery, JSONBody

from tocsin.ext import LogHit, LogLevel, LogQuery, LogRecord, Page
from tocsin_api import params
from tocsin_api.deps import MonitorDep
from tocsin_api.ingest import Accepted, accepted


@get("/logs", summary="Search logs with the log query language", tags=["logs"])
async def search_logs(
    monitor: MonitorDep,
    q: FromQuery[str] = "",
    level: FromQuery[LogLevel | None] = None,
    service: FromQuery[str | None] = None,
    trace_id: FromQuery[str | None] = None,
    span_id: FromQuery[str | None] = None,
    execution_id: FromQuery[str | None] = None,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
) -> Page[LogHit]:
    """Log records matching `q` and the filters, newest first; `level` is a minimum."""
    storage = monitor.storage
    assert storage is not None
    now_ns = time.time_ns()
    query = LogQuery(text=q, level=level, service=service or None, trace_id=(trace_id or "").lower() or None,
                     span_id=(span_id or "").lower() or None, execution_id=execution_id or None,
                     start_ns=params.time_ns(start, "start", now_ns=now_ns),
                     end_ns=params.time_ns(end, "end", now_ns=now_ns), cursor=cursor or None,
                     limit=params.limit(limit))
    return await storage.search_logs(query)


@post("/logs", status_code=202, opt={"scope": "write"},
      summary="Ingest a batch of log records", tags=["logs"])
async def ingest_logs(monitor: MonitorDep, data: JSONBody[list[LogRecord]]) -> Accepted:
    """Store tocsin LogRecords now (`id` is ignored: storage assigns it); unstorable ones are dropped."""
    outcome = await monitor.ingest("logs", data)
    return accepted(outcome)


ROUTES = [search_logs, ingest_logs]
