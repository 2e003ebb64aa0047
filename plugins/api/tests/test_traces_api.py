"""The traces endpoints over a real socket: span search and paging, a trace as a tree, its logs, services and
operations, and ingest of spans."""

from __future__ import annotations

import time

import httpx
import pytest
import tocsin_api.routes.traces as traces_routes

KEYS = {"server": {"api_keys": [
    {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]},
    {"name": "writer", "key": "w-secret-0123456789abcdef", "scopes": ["read", "write"]},
]}}
MS = 10**6
BASE_NS = time.time_ns() // MS * MS - 600_000 * MS  # ten minutes before the tests start


def span(trace: int, span_id: int, name: str, start_ms: int, duration_ms: int | None, *, parent: int | None = None,
         service: str = "shop", status: str = "unset", **attributes) -> dict:
    """A Span as JSON, with ids made from small numbers and times in ms from ten minutes ago."""
    start = BASE_NS + start_ms * MS
    return {"trace_id": f"{trace:032x}", "span_id": f"{span_id:016x}",
            "parent_span_id": None if parent is None else f"{parent:016x}", "name": name, "service": service,
            "start_ns": start, "end_ns": None if duration_ms is None else start + duration_ms * MS, "status": status,
            "attributes": attributes}


CHECKOUT = [
    span(1, 1, "GET /checkout", 0, 900, status="error", route="/checkout"),
    span(1, 2, "SELECT cart", 10, 30, parent=1, service="db", rows=3),
    span(1, 3, "POST /charge", 50, 800, parent=1, service="payments", status="error"),
    span(1, 4, "retry", 60, 200, parent=3, service="payments"),
    span(1, 5, "late child", 70, None, parent=9, service="payments"),  # its parent is not stored
]
OTHER = [span(2, 20 + i, "GET /home", 1000 + i * 10, 5 + i, route="/home") for i in range(4)]


def ingest(client: httpx.Client, spans: list[dict]) -> dict:
    response = client.post("/api/v1/traces", json=spans)
    assert response.status_code == 202, response.text
    return response.json()


def field_of(response: httpx.Response) -> str:
    body = response.json()
    assert response.status_code == 400, body
    assert response.headers["content-type"].startswith("application/problem+json")
    return body["errors"][0]["field"]


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


def test_ingested_spans_are_stored_and_counted(client):
    assert ingest(client, CHECKOUT + OTHER) == {"accepted": 9, "dropped": 0, "sanitized": 0}
    assert ingest(client, []) == {"accepted": 0, "dropped": 0, "sanitized": 0}
    assert client.get("/api/v1/traces").json()["total"] == 9


def test_a_span_written_again_replaces_its_running_version(client):
    running = span(7, 70, "batch", 0, None)
    ingest(client, [running])
    tree = client.get(f"/api/v1/traces/{running['trace_id']}").json()
    assert tree["running"] == 1 and tree["end_ns"] is None and tree["spans"][0]["end_ns"] is None
    ingest(client, [{**running, "end_ns": running["start_ns"] + 5 * MS, "status": "ok"}])
    tree = client.get(f"/api/v1/traces/{running['trace_id']}").json()
    assert tree["running"] == 0 and len(tree["spans"]) == 1 and tree["spans"][0]["status"] == "ok"


def test_search_filters_by_service_name_status_duration_time_and_attributes(client):
    ingest(client, CHECKOUT + OTHER)
    url = "/api/v1/traces"
    assert names(client.get(url, params={"service": "payments"})) == ["late child", "retry", "POST /charge"]
    assert names(client.get(url, params={"name": "SELECT cart"})) == ["SELECT cart"]
    assert names(client.get(url, params={"status": "error"})) == ["POST /charge", "GET /checkout"]
    assert names(client.get(url, params={"min_duration": "500ms"})) == ["POST /charge", "GET /checkout"]
    assert names(client.get(url, params={"min_duration": "0.2", "max_duration": "0.8s"})) == ["retry",
                                                                                               "POST /charge"]
    assert len(names(client.get(url, params={"max_duration": "7ms"}))) == 3  # running spans have no duration
    assert names(client.get(url, params={"root_only": "true", "service": "shop", "name": "GET /checkout"})) == [
        "GET /checkout"]
    assert names(client.get(url, params={"attribute": "rows=3"})) == ["SELECT cart"]
    assert names(client.get(url, params={"attribute": 'rows="3"'})) == []  # a JSON string is not the int 3
    assert names(client.get(url, params={"attribute": "route=/checkout"})) == ["GET /checkout"]
    home_start = OTHER[0]["start_ns"]
    assert len(names(client.get(url, params={"start": str(home_start)}))) == 4
    assert names(client.get(url, params={"end": str(home_start), "service": "db"})) == ["SELECT cart"]
    assert names(client.get(url, params={"start": "1m"})) == []  # every span started ten minutes ago


def test_search_pages_with_cursors_newest_first(client):
    ingest(client, CHECKOUT + OTHER)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = client.get("/api/v1/traces", params={"limit": 4, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["items"]) <= 4 and page["total"] == 9
        seen.extend(item["span_id"] for item in page["items"])
        starts = [item["start_ns"] for item in page["items"]]
        assert starts == sorted(starts, reverse=True)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 9


@pytest.mark.parametrize(("query", "field"), [
    ({"status": "failed"}, "status"),
    ({"min_duration": "soon"}, "min_duration"),
    ({"min_duration": "2s", "max_duration": "1s"}, "max_duration"),
    ({"start": "tomorrow"}, "start"),
    ({"start": "1m", "end": "2m"}, "end"),
    ({"limit": "0"}, "limit"),
    ({"limit": "10001"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"attribute": "no-equals-sign"}, "attribute"),
    ({"root_only": "perhaps"}, "root_only"),
])
def test_bad_search_parameters_are_400_naming_the_parameter(client, query, field):
    assert field_of(client.get("/api/v1/traces", params=query)) == field


def test_a_bad_cursor_is_a_bad_query(client):
    response = client.get("/api/v1/traces", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400 and response.json()["type"] == "urn:tocsin:problem:bad-query"


def test_a_trace_is_a_tree_with_roots_children_and_running_spans(client):
    ingest(client, CHECKOUT + OTHER)
    trace_id = CHECKOUT[0]["trace_id"]
    response = client.get(f"/api/v1/traces/{trace_id}")
    assert response.status_code == 200
    tree = response.json()
    assert tree["trace_id"] == trace_id
    assert [s["name"] for s in tree["spans"]] == ["GET /checkout", "SELECT cart", "POST /charge", "retry",
                                                  "late child"]
    assert tree["roots"] == [f"{1:016x}", f"{5:016x}"]  # the late child's parent is not stored
    assert tree["children"] == {f"{1:016x}": [f"{2:016x}", f"{3:016x}"], f"{3:016x}": [f"{4:016x}"]}
    assert tree["services"] == ["db", "payments", "shop"]
    assert tree["running"] == 1 and tree["errors"] == 2
    assert tree["start_ns"] == CHECKOUT[0]["start_ns"] and tree["end_ns"] == CHECKOUT[0]["end_ns"]
    assert client.get(f"/api/v1/traces/{trace_id.upper()}").json()["trace_id"] == trace_id


def test_a_recorded_trace_includes_its_running_spans(serve):
    server = serve({"tracing": {"live_after": "0s"}})
    tracer = server.monitor.tracer
    with tracer.span("job") as root:
        with tracer.span("step one"):
            pass
        unfinished = tracer.start_span("step two")
        server.call(server.monitor.flush())
        with httpx.Client(base_url=server.base) as http:
            tree = http.get(f"/api/v1/traces/{root.trace_id}").json()
            by_name = {s["name"]: s for s in tree["spans"]}
            assert set(by_name) == {"job", "step one", "step two"}
            assert by_name["step two"]["end_ns"] is None and by_name["job"]["end_ns"] is None
            assert tree["roots"] == [root.span_id] and tree["running"] == 2
            assert sorted(tree["children"][root.span_id]) == sorted([by_name["step one"]["span_id"],
                                                                     unfinished.span_id])
        unfinished.end()


def test_an_unknown_trace_is_404_and_a_malformed_id_is_400(client):
    missing = client.get(f"/api/v1/traces/{'ab' * 16}")
    assert missing.status_code == 404 and missing.json()["type"] == "urn:tocsin:problem:not-found"
    for bad in ("xyz", "ab" * 15, "zz" * 16, "ab" * 17):
        assert field_of(client.get(f"/api/v1/traces/{bad}")) == "trace_id"
        assert field_of(client.get(f"/api/v1/traces/{bad}/logs")) == "trace_id"


def test_the_logs_of_a_trace(server, client):
    tracer, log = server.monitor.tracer, server.monitor.log
    with tracer.span("checkout") as root:
        log.info("cart loaded", items=3)
        with tracer.span("charge") as charge:
            log.warning("card declined once")
            log.error("charge failed")
    log.info("outside any trace")
    server.call(server.monitor.flush())
    url = f"/api/v1/traces/{root.trace_id}/logs"
    everything = client.get(url).json()
    assert [hit["record"]["message"] for hit in everything["items"]] == ["charge failed", "card declined once",
                                                                         "cart loaded"]
    assert all(hit["record"]["trace_id"] == root.trace_id for hit in everything["items"])
    assert [h["record"]["message"] for h in client.get(url, params={"level": "warning"}).json()["items"]] == [
        "charge failed", "card declined once"]
    assert len(client.get(url, params={"span_id": charge.span_id}).json()["items"]) == 2
    assert [h["record"]["message"] for h in client.get(url, params={"q": "cart"}).json()["items"]] == [
        "cart loaded"]
    first = client.get(url, params={"limit": 2}).json()
    rest = client.get(url, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(first["items"]) == 2 and [h["record"]["message"] for h in rest["items"]] == ["cart loaded"]
    assert rest["next_cursor"] is None
    assert client.get(f"/api/v1/traces/{'cd' * 16}/logs").json()["items"] == []
    assert field_of(client.get(url, params={"level": "loud"})) == "level"
    assert field_of(client.get(url, params={"span_id": "xyz"})) == "span_id"
    assert field_of(client.get(url, params={"limit": "0"})) == "limit"
    assert field_of(client.get(url, params={"start": "5m", "end": "10m"})) == "end"


def test_services_and_their_operations_in_a_time_range(client):
    ingest(client, CHECKOUT + OTHER)
    services = client.get("/api/v1/traces/services")
    assert services.status_code == 200
    body = services.json()
    assert body["items"] == ["db", "payments", "shop"] and body["complete"] is True and body["scanned"] == 9
    assert body["end_ns"] - body["start_ns"] == 3600 * 10**9
    assert client.get("/api/v1/traces/services", params={"start": "1m"}).json()["items"] == []
    after_checkout = str(OTHER[0]["start_ns"])
    assert client.get("/api/v1/traces/services", params={"start": after_checkout}).json()["items"] == ["shop"]
    operations = client.get("/api/v1/traces/services/payments/operations").json()
    assert operations["items"] == ["POST /charge", "late child", "retry"] and operations["complete"] is True
    shop = client.get("/api/v1/traces/services/shop/operations").json()["items"]
    assert shop == ["GET /checkout", "GET /home"]
    assert client.get("/api/v1/traces/services/nobody/operations").json()["items"] == []
    assert field_of(client.get("/api/v1/traces/services", params={"end": "later"})) == "end"
    assert field_of(client.get("/api/v1/traces/services/shop/operations", params={"start": "0", "end": "0"})) == "end"


def test_services_read_a_bounded_number_of_spans_and_say_so(client, server, monkeypatch):
    ingest(client, CHECKOUT + OTHER)
    # a backend that cannot count spans (count_spans_by is optional); the server runs in this process
    monkeypatch.setattr(server.monitor.storage, "count_spans_by", None)
    monkeypatch.setattr(traces_routes, "SCAN_LIMIT", 4)
    body = client.get("/api/v1/traces/services").json()
    assert body["items"] == ["shop"] and body["scanned"] == 4 and body["complete"] is False


@pytest.mark.parametrize(("change", "field"), [
    ({"trace_id": "xyz"}, "[1].trace_id"),
    ({"trace_id": "0" * 32}, "[1].trace_id"),
    ({"span_id": "0" * 16}, "[1].span_id"),
    ({"parent_span_id": "parent"}, "[1].parent_span_id"),
    ({"end_ns": 1}, "[1].end_ns"),
    ({"start_ns": 2**64}, "[1].start_ns"),
    ({"events": [{"name": "boom", "time_ns": -(2**63) - 1}]}, "[1].events[0].time_ns"),
])
def test_a_span_with_bad_ids_or_times_is_400_naming_it_and_nothing_is_stored(client, change, field):
    batch = [OTHER[0], {**OTHER[1], **change}]
    assert field_of(client.post("/api/v1/traces", json=batch)) == field
    assert client.get("/api/v1/traces").json()["items"] == []


def test_a_time_beyond_64_bits_is_400_on_memory_storage_too(serve):
    server = serve(sqlite=False)  # memory storage would otherwise fail the whole batch (a 503)
    with httpx.Client(base_url=server.base) as http:
        assert field_of(http.post("/api/v1/traces", json=[{**OTHER[0], "end_ns": 2**63}])) == "[0].end_ns"
        assert http.post("/api/v1/traces", json=OTHER).status_code == 202


@pytest.mark.parametrize("body", [
    [{"trace_id": "ab" * 16, "span_id": "cd" * 8}],  # no name, no start
    [{**OTHER[0], "surprise": 1}],
    [{**OTHER[0], "status": "fine"}],
    OTHER[0],
])
def test_a_malformed_span_body_is_400(client, body):
    response = client.post("/api/v1/traces", json=body)
    assert response.status_code == 400 and response.json()["type"] == "urn:tocsin:problem:validation"


def test_uppercase_ids_are_stored_lowercase(client):
    upper = {**OTHER[0], "trace_id": OTHER[0]["trace_id"].upper().replace("0", "A"),
             "span_id": "ABCDEF0123456789"}
    ingest(client, [upper])
    found = client.get("/api/v1/traces").json()["items"]
    assert [(s["trace_id"], s["span_id"]) for s in found] == [(upper["trace_id"].lower(), "abcdef0123456789")]


def test_ingesting_spans_needs_the_write_scope(serve):
    server = serve(KEYS)
    with httpx.Client(base_url=server.base) as http:
        reader = {"Authorization": "Bearer r-secret-0123456789abcdef"}
        writer = {"Authorization": "Bearer w-secret-0123456789abcdef"}
        assert http.post("/api/v1/traces", json=OTHER, headers=reader).status_code == 403
        assert http.post("/api/v1/traces", json=OTHER).status_code == 401
        assert http.post("/api/v1/traces", json=OTHER, headers=writer).status_code == 202
        assert http.get("/api/v1/traces/services", headers=reader).json()["items"] == ["shop"]
        assert http.get(f"/api/v1/traces/{OTHER[0]['trace_id']}", headers=reader).status_code == 200
