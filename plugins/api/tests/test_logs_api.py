"""`/api/v1/logs`: searching with the log query language and its filters, paging, and batch ingest."""

from __future__ import annotations

import time

import httpx

KEYS = {"server": {"api_keys": [
    {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]},
    {"name": "writer", "key": "w-secret-0123456789abcdef", "scopes": ["read", "write"]},
]}}
READER = {"Authorization": "Bearer r-secret-0123456789abcdef"}
WRITER = {"Authorization": "Bearer w-secret-0123456789abcdef"}


def record_logs(server) -> str:
    """Log a handful of records (one inside a span) and flush; returns the span's trace id."""
    log = server.monitor.log
    log.info("cache warm", keys=3)
    log.info("connection refused by db-1", host="db-1")
    log.warning("connection slow on db-2", host="db-2")
    with server.monitor.tracer.span("checkout") as span:
        log.error("payment failed: card declined", order=42)
        trace_id = span.trace_id
    server.call(server.monitor.flush())
    return trace_id


def messages(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["record"]["message"] for hit in response.json()["items"]]


def test_search_lists_newest_first_with_totals_and_marked_snippets(server, client):
    record_logs(server)
    everything = client.get("/api/v1/logs")
    assert messages(everything) == ["payment failed: card declined", "connection slow on db-2",
                                    "connection refused by db-1", "cache warm"]
    assert everything.json()["total"] == 4
    found = client.get("/api/v1/logs", params={"q": "connection refused"})
    assert messages(found) == ["connection refused by db-1"]
    hit = found.json()["items"][0]
    assert hit["snippet"] == "[connection] [refused] by db-1"
    assert hit["record"]["attributes"] == {"host": "db-1"} and hit["record"]["level"] == "info"
    assert messages(client.get("/api/v1/logs", params={"q": "connection -slow"})) == ["connection refused by db-1"]
    assert messages(client.get("/api/v1/logs", params={"q": "level:warning+"})) == [
        "payment failed: card declined", "connection slow on db-2"]


def test_filters_by_level_service_trace_execution_and_time(server, client):
    trace_id = record_logs(server)
    assert messages(client.get("/api/v1/logs", params={"level": "warning"})) == [
        "payment failed: card declined", "connection slow on db-2"]
    by_trace = client.get("/api/v1/logs", params={"trace_id": trace_id})
    assert messages(by_trace) == ["payment failed: card declined"]
    assert by_trace.json()["items"][0]["record"]["span_id"] is not None
    service = server.monitor.config.service
    assert len(messages(client.get("/api/v1/logs", params={"service": service}))) == 4
    assert messages(client.get("/api/v1/logs", params={"service": "no-such-service"})) == []
    assert messages(client.get("/api/v1/logs", params={"execution_id": "no-such-run"})) == []
    assert len(messages(client.get("/api/v1/logs", params={"start": "1h"}))) == 4
    assert messages(client.get("/api/v1/logs", params={"end": "1h"})) == []
    assert messages(client.get("/api/v1/logs", params={"start": "2000-01-01T00:00:00Z",
                                                       "end": "2000-01-02T00:00:00Z"})) == []


def test_pages_follow_the_cursor_without_repeats_or_gaps(server, client):
    for i in range(7):
        server.monitor.log.info(f"tick {i}")
    server.call(server.monitor.flush())
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = client.get("/api/v1/logs", params={"q": "tick", "limit": 3, **({"cursor": cursor} if cursor else {})})
        body = page.json()
        assert len(body["items"]) <= 3
        seen += messages(page)
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"tick {i}" for i in reversed(range(7))]


def test_bad_queries_and_parameters_are_400_problems_naming_what_is_wrong(client):
    bad_q = client.get("/api/v1/logs", params={"q": "-debug"})
    assert bad_q.status_code == 400
    assert bad_q.json()["type"] == "urn:tocsin:problem:bad-query"
    assert "negat" in bad_q.json()["detail"]
    for name, value in [("level", "loud"), ("start", "yesterday"), ("end", "2025-13-01T00:00:00Z"),
                        ("limit", "0"), ("limit", "many")]:
        response = client.get("/api/v1/logs", params={name: value})
        assert response.status_code == 400, (name, value, response.text)
        problem = response.json()
        assert problem["type"] == "urn:tocsin:problem:validation"
        assert [error["field"] for error in problem["errors"]] == [name], problem
    cursor = client.get("/api/v1/logs", params={"cursor": "not-a-cursor"})
    assert cursor.status_code == 400 and cursor.json()["type"] == "urn:tocsin:problem:bad-query"
    assert "cursor" in cursor.json()["detail"]


def record(message: str, **fields) -> dict:
    return {"time_ns": time.time_ns(), "level": "info", "message": message, "service": "billing", **fields}


def test_ingest_stores_records_and_answers_202_with_counts(client):
    records = [record("invoice 17 sent", attributes={"invoice": 17}),
               record("invoice 18 bounced", level="error", trace_id="0af7651916cd43dd8448eb211c80319c",
                      span_id="b7ad6b7169203331", id=999)]
    response = client.post("/api/v1/logs", json=records)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "dropped": 0, "sanitized": 0}
    found = client.get("/api/v1/logs", params={"service": "billing", "q": "invoice"}).json()
    assert [hit["record"]["message"] for hit in found["items"]] == ["invoice 18 bounced", "invoice 17 sent"]
    assert found["items"][0]["record"]["id"] != 999  # storage assigns ids
    assert found["items"][1]["record"]["attributes"] == {"invoice": 17}
    by_trace = client.get("/api/v1/logs", params={"trace_id": "0af7651916cd43dd8448eb211c80319c"})
    assert messages(by_trace) == ["invoice 18 bounced"]
    empty = client.post("/api/v1/logs", json=[])
    assert empty.status_code == 202 and empty.json() == {"accepted": 0, "dropped": 0, "sanitized": 0}


def test_ingest_drops_unstorable_records_and_keeps_the_rest(client):
    records = [record("good one"), record("bad trace id", trace_id="not-hex"), record("another good one")]
    response = client.post("/api/v1/logs", json=records)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "dropped": 1, "sanitized": 0}
    assert sorted(messages(client.get("/api/v1/logs", params={"service": "billing"}))) == [
        "another good one", "good one"]


def test_a_lone_surrogate_is_stored_as_the_replacement_character_and_counted(client):
    now = time.time_ns()
    body = (f'[{{"time_ns": {now}, "level": "warning", "message": "bad \\ud800 byte", "service": "billing"}},'
            f' {{"time_ns": {now}, "level": "info", "message": "clean", "service": "billing"}}]')
    assert "\\ud800" in body
    response = client.post("/api/v1/logs", content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "dropped": 0, "sanitized": 1}
    stored = messages(client.get("/api/v1/logs", params={"level": "warning"}))
    assert stored == ["bad \ufffd byte"]


def test_bad_bodies_are_400_problems_and_never_5xx(client):
    for body, says in [([{"level": "info", "message": "x"}], "time_ns"),
                       ([record("x", level="loud")], "'loud'"),
                       ([record("x", colour="red")], "colour"),
                       ({"records": [record("x")]}, "array")]:
        response = client.post("/api/v1/logs", json=body)
        assert response.status_code == 400, (body, response.text)
        problem = response.json()
        assert problem["type"] == "urn:tocsin:problem:validation" and says in problem["detail"], problem
        assert [error["source"] for error in problem["errors"]] == ["body"]
    for content in (b"{not json", b'[{"time_ns": NaN}]', b"\xff\xfe", b"[" * 100_000):
        response = client.post("/api/v1/logs", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400, (content[:20], response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert messages(client.get("/api/v1/logs")) == []


def test_a_body_over_max_body_bytes_is_413(serve):
    server = serve({"server": {"max_body_bytes": 1024}})
    with httpx.Client(base_url=server.base, timeout=10) as http:
        small = http.post("/api/v1/logs", json=[record("fits")])
        assert small.status_code == 202
        big = http.post("/api/v1/logs", json=[record("x" * 200) for _ in range(10)])
        assert big.status_code == 413
        assert big.json()["type"] == "urn:tocsin:problem:too-large"
        assert messages(http.get("/api/v1/logs")) == ["fits"]


def test_ingest_needs_the_write_scope_and_search_the_read_scope(serve):
    server = serve(KEYS)
    with httpx.Client(base_url=server.base, timeout=10) as http:
        body = [record("from a writer")]
        assert http.post("/api/v1/logs", json=body).status_code == 401
        forbidden = http.post("/api/v1/logs", json=body, headers=READER)
        assert forbidden.status_code == 403 and forbidden.json()["type"] == "urn:tocsin:problem:forbidden"
        assert http.post("/api/v1/logs", json=body, headers=WRITER).status_code == 202
        assert http.get("/api/v1/logs").status_code == 401
        assert messages(http.get("/api/v1/logs", headers=READER)) == ["from a writer"]
