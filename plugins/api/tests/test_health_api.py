"""`/api/v1/health`: the system status with each component, a component's history, and heartbeats."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest

from tocsin.ext import HealthResult

KEYS = {"api_keys": [
    {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]},
    {"name": "writer", "key": "w-secret-0123456789abcdef", "scopes": ["read", "write"]},
]}
READER = {"Authorization": "Bearer r-secret-0123456789abcdef"}
WRITER = {"Authorization": "Bearer w-secret-0123456789abcdef"}
AHEAD = itertools.count(2**62, 10**13)  # times for run_due, each more than the checks' 1h interval later
HEARTBEAT = {"checks": [{"name": "nightly", "type": "heartbeat", "period": "1h", "grace": "5m", "critical": False}]}


class Switch:
    """A check function whose answer the test sets."""

    def __init__(self, answer: object = True) -> None:
        self.answer = answer

    def __call__(self) -> object:
        return self.answer


def add_checks(server, **checks: tuple[Switch, list[str]]) -> None:
    """Register callable checks (with dependencies) on the server's loop."""

    async def add() -> None:
        for name, (function, depends_on) in checks.items():
            server.monitor.health.check(name, interval="1h", depends_on=depends_on)(function)

    server.call(add())


def wait_for(http: httpx.Client, predicate, timeout: float = 10) -> dict:
    """Poll GET /health until `predicate(body)` holds; the scheduler runs checks on its own task."""
    deadline = time.monotonic() + timeout
    while True:
        body = http.get("/api/v1/health").json()
        if predicate(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def run_check(server, name: str) -> None:
    """Run component `name` now (and whatever else is idle), retrying while the scheduler has it running.

    `run_due` is told a time far ahead, a step later each call, so every idle component is due."""
    deadline = time.monotonic() + 10
    while True:
        if any(result.component == name for result in server.call(server.monitor.health.run_due(next(AHEAD)))):
            return
        assert time.monotonic() < deadline
        time.sleep(0.01)


def by_name(body: dict) -> dict[str, dict]:
    return {component["name"]: component for component in body["components"]}


def checked(*names: str):
    return lambda body: all(by_name(body).get(name, {}).get("last_result") for name in names)


@pytest.fixture
def health_server(serve):
    server = serve({"health": HEARTBEAT})
    db, api = Switch(True), Switch(True)
    add_checks(server, db=(db, []), api=(api, ["db"]))
    return server, db, api


def test_the_system_status_lists_components_with_status_dependencies_and_last_result(health_server):
    server, db, _api = health_server
    with httpx.Client(base_url=server.base, timeout=10) as http:
        body = wait_for(http, checked("db", "api", "nightly"))
        assert body["status"] == "healthy"
        components = by_name(body)
        assert sorted(components) == ["api", "db", "nightly"]
        api = components["api"]
        assert api["status"] == "healthy" and api["depends_on"] == ["db"] and api["critical"] is True
        assert api["since_ns"] is not None and api["last_check_ns"] is not None
        assert api["last_result"]["component"] == "api" and api["last_result"]["status"] == "healthy"
        nightly = components["nightly"]
        assert nightly["status"] == "unknown" and nightly["critical"] is False
        assert nightly["message"] == "waiting for the first beat"

        db.answer = "unhealthy"
        run_check(server, "db")
        body = wait_for(http, lambda b: b["status"] == "unhealthy")
        components = by_name(body)
        assert components["db"]["status"] == "unhealthy"
        assert components["api"]["status"] == "degraded" and components["api"]["cause"] == "db"
        assert components["api"]["check_status"] == "healthy"


def test_history_is_newest_first_filtered_and_paged(health_server):
    server, db, _api = health_server
    answers = ["unhealthy", True, "unhealthy", True, "degraded"]
    with httpx.Client(base_url=server.base, timeout=10) as http:
        wait_for(http, checked("db"))
        for answer in answers:
            db.answer = answer
            run_check(server, "db")
        history = http.get("/api/v1/health/db")
        assert history.status_code == 200
        statuses = [result["status"] for result in history.json()["items"]]
        assert statuses == ["degraded", "healthy", "unhealthy", "healthy", "unhealthy", "healthy"]
        times = [result["time_ns"] for result in history.json()["items"]]
        assert times == sorted(times, reverse=True)
        unhealthy = http.get("/api/v1/health/db", params={"status": "unhealthy"}).json()["items"]
        assert [result["status"] for result in unhealthy] == ["unhealthy", "unhealthy"]
        assert http.get("/api/v1/health/db", params={"end": "1h"}).json()["items"] == []
        assert len(http.get("/api/v1/health/db", params={"start": "1h"}).json()["items"]) == 6

        paged, cursor = [], None
        while True:
            page = http.get("/api/v1/health/db", params={"limit": 4, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            paged += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert paged == history.json()["items"]


def test_history_pages_through_results_tied_on_time(server, client):
    results = [HealthResult(component="disk", status="healthy", time_ns=1000, message=f"run {i}") for i in range(5)]
    server.call(server.monitor.storage.write_health(results))  # a component no longer watched: still served
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/health/disk", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [result["message"] for result in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"run {i}" for i in reversed(range(5))]


def test_unknown_components_are_404_and_bad_parameters_400(health_server):
    server, _db, _api = health_server
    with httpx.Client(base_url=server.base, timeout=10) as http:
        missing = http.get("/api/v1/health/nothing")
        assert missing.status_code == 404 and missing.json()["type"] == "urn:tocsin:problem:not-found"
        assert http.post("/api/v1/health/nothing/heartbeat").status_code == 404
        for name, value in [("status", "fine"), ("start", "soon"), ("limit", "0")]:
            response = http.get("/api/v1/health/db", params={name: value})
            assert response.status_code == 400, (name, response.text)
            assert [error["field"] for error in response.json()["errors"]] == [name]
        bad_cursor = http.get("/api/v1/health/db", params={"cursor": "xyz"})
        assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["detail"]


def test_heartbeats_beat_start_and_fail(health_server):
    server, _db, _api = health_server
    with httpx.Client(base_url=server.base, timeout=10) as http:
        wait_for(http, checked("nightly"))
        before = time.time_ns()
        beat = http.post("/api/v1/health/nightly/heartbeat")
        assert beat.status_code == 202, beat.text
        assert beat.json()["component"] == "nightly" and beat.json()["status"] == "ok"
        assert beat.json()["time_ns"] >= before
        body = wait_for(http, lambda b: by_name(b)["nightly"]["status"] == "healthy")
        assert by_name(body)["nightly"]["last_result"]["details"]["last_beat_ns"] == beat.json()["time_ns"]

        started = http.post("/api/v1/health/nightly/heartbeat", json={"status": "start"})
        assert started.status_code == 202 and started.json()["status"] == "start"
        failed = http.post("/api/v1/health/nightly/heartbeat", json={"status": "fail", "message": "exit code 3"})
        assert failed.status_code == 202 and failed.json()["status"] == "fail"
        body = wait_for(http, lambda b: by_name(b)["nightly"]["status"] == "unhealthy")
        assert by_name(body)["nightly"]["message"] == "exit code 3"
        assert body["status"] == "degraded"  # nightly is not critical

        wrong = http.post("/api/v1/health/nightly/heartbeat", json={"status": "done"})
        assert wrong.status_code == 400 and wrong.json()["errors"][0]["source"] == "body"
        not_heartbeat = http.post("/api/v1/health/db/heartbeat")
        assert not_heartbeat.status_code == 409 and "not a heartbeat" in not_heartbeat.json()["detail"]


def test_heartbeats_need_the_write_scope(serve):
    server = serve({"health": HEARTBEAT, "server": KEYS})
    with httpx.Client(base_url=server.base, timeout=10) as http:
        assert http.get("/api/v1/health").status_code == 401
        assert http.get("/api/v1/health", headers=READER).status_code == 200
        assert http.get("/api/v1/health/nightly", headers=READER).status_code == 200
        assert http.post("/api/v1/health/nightly/heartbeat", headers=READER).status_code == 403
        assert http.post("/api/v1/health/nightly/heartbeat", headers=WRITER).status_code == 202
