"""`/api/v1/workflows`: workflows with their last run, executions, one execution with steps and logs, stats."""

from __future__ import annotations

import httpx
import pytest

KEYS = {"server": {"api_keys": [{"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]}]}}
READER = {"Authorization": "Bearer r-secret-0123456789abcdef"}


def record_runs(server) -> dict[str, str]:
    """Two good etl runs and a failed one (with steps and logs), and a report still running; returns ids."""
    workflows, log = server.monitor.workflows, server.monitor.log
    ids: dict[str, str] = {}
    for day in ("2026-12-01", "2026-12-02"):
        with workflows.execution("etl", params={"day": day}) as run:
            with run.step("extract"):
                log.info("extracted rows", rows=10, day=day)
            with run.step("load"):
                log.info("loaded rows", rows=10, day=day)
        ids[day] = run.id

    def failing_run() -> None:
        with workflows.execution("etl", params={"day": "2026-12-03"}) as run:
            ids["failed"] = run.id
            with run.step("extract"):
                log.info("extracted rows", rows=7)
            with run.step("load"):
                raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        failing_run()
    ids["report"] = workflows.started("report")
    server.call(server.monitor.flush())
    return ids


@pytest.fixture
def runs(server) -> dict[str, str]:
    return record_runs(server)


def test_workflows_list_names_with_counts_running_and_last_run(runs, client):
    response = client.get("/api/v1/workflows")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2 and body["next_cursor"] is None
    etl, report = body["items"]
    assert (etl["name"], etl["finished"], etl["succeeded"], etl["failed"], etl["cancelled"], etl["running"]) == (
        "etl", 3, 2, 1, 0, 0)
    assert etl["last_run"]["id"] == runs["failed"] and etl["last_run"]["status"] == "failed"
    assert (report["name"], report["finished"], report["running"]) == ("report", 0, 1)
    assert report["last_run"]["id"] == runs["report"] and report["last_run"]["status"] == "running"

    first = client.get("/api/v1/workflows", params={"limit": 1}).json()
    assert [item["name"] for item in first["items"]] == ["etl"] and first["next_cursor"]
    second = client.get("/api/v1/workflows", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [item["name"] for item in second["items"]] == ["report"] and second["next_cursor"] is None
    assert client.get("/api/v1/workflows", params={"end": "1h"}).json()["items"] == []


def test_executions_are_newest_first_filtered_and_paged(runs, client):
    everything = client.get("/api/v1/workflows/executions").json()
    assert [e["id"] for e in everything["items"]] == [runs["report"], runs["failed"], runs["2026-12-02"],
                                                     runs["2026-12-01"]]
    etl = client.get("/api/v1/workflows/executions", params={"name": "etl", "status": "succeeded"}).json()
    assert [e["params"]["day"] for e in etl["items"]] == ["2026-12-02", "2026-12-01"]
    failed = client.get("/api/v1/workflows/executions", params={"status": "failed"}).json()["items"]
    assert [e["id"] for e in failed] == [runs["failed"]] and "disk full" in failed[0]["error"]
    assert client.get("/api/v1/workflows/executions", params={"start": "1h"}).json()["items"] != []
    assert client.get("/api/v1/workflows/executions", params={"end": "1h"}).json()["items"] == []

    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/workflows/executions",
                          params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in everything["items"]]


def test_an_execution_comes_with_its_steps_trace_and_logs(server, runs, client):
    response = client.get(f"/api/v1/workflows/executions/{runs['2026-12-01']}")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["execution"]["name"] == "etl" and detail["execution"]["status"] == "succeeded"
    assert [(s["name"], s["status"]) for s in detail["steps"]] == [("extract", "succeeded"), ("load", "succeeded")]
    assert detail["trace_id"] == detail["execution"]["trace_id"] and len(detail["trace_id"]) == 32
    logs = detail["logs"]
    assert [hit["record"]["message"] for hit in logs["items"]] == ["loaded rows", "extracted rows"]
    assert {hit["record"]["step"] for hit in logs["items"]} == {"extract", "load"}
    assert {hit["record"]["execution_id"] for hit in logs["items"]} == {runs["2026-12-01"]}

    failed = client.get(f"/api/v1/workflows/executions/{runs['failed']}").json()
    assert [(s["name"], s["status"]) for s in failed["steps"]] == [("extract", "succeeded"), ("load", "failed")]
    assert "ValueError: disk full" in failed["steps"][1]["error"]
    assert "workflow step failed" in [hit["record"]["message"] for hit in failed["logs"]["items"]]

    first = client.get(f"/api/v1/workflows/executions/{runs['2026-12-01']}", params={"log_limit": 1}).json()
    assert [hit["record"]["message"] for hit in first["logs"]["items"]] == ["loaded rows"]
    rest = client.get("/api/v1/logs", params={"execution_id": runs["2026-12-01"], "limit": 1,
                                              "cursor": first["logs"]["next_cursor"]}).json()
    assert [hit["record"]["message"] for hit in rest["items"]] == ["extracted rows"]


def test_stats_count_outcomes_durations_and_steps(runs, client):
    response = client.get("/api/v1/workflows/etl/stats")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["name"], stats["count"], stats["succeeded"], stats["failed"]) == ("etl", 3, 2, 1)
    assert stats["success_rate"] == pytest.approx(2 / 3)
    assert stats["p50"] is not None and stats["p50"] <= stats["p99"]
    assert stats["active"] == 0 and stats["last_run"]["id"] == runs["failed"]
    steps = {step["name"]: step for step in stats["steps"]}
    assert sorted(steps) == ["extract", "load"]
    assert (steps["extract"]["count"], steps["extract"]["succeeded"]) == (3, 3)
    assert (steps["load"]["count"], steps["load"]["failed"], steps["load"]["last_status"]) == (3, 1, "failed")
    report = client.get("/api/v1/workflows/report/stats").json()
    assert (report["count"], report["active"]) == (0, 1)
    assert client.get("/api/v1/workflows/etl/stats", params={"end": "2000-01-01T00:00:00Z"}).json()["count"] == 0


def test_unknown_ids_and_names_are_404_and_bad_parameters_400(runs, client):
    missing = client.get("/api/v1/workflows/executions/no-such-run")
    assert missing.status_code == 404 and missing.json()["type"] == "urn:tocsin:problem:not-found"
    assert client.get("/api/v1/workflows/no-such-workflow/stats").status_code == 404
    for path, name, value in [("/api/v1/workflows/executions", "status", "done"),
                              ("/api/v1/workflows/executions", "start", "soon"),
                              ("/api/v1/workflows/executions", "limit", "0"),
                              ("/api/v1/workflows", "end", "later"),
                              ("/api/v1/workflows/etl/stats", "start", "soon"),
                              (f"/api/v1/workflows/executions/{runs['failed']}", "log_limit", "100000")]:
        response = client.get(path, params={name: value})
        assert response.status_code == 400, (path, name, response.text)
        assert [error["field"] for error in response.json()["errors"]] == [name]
    for path in ("/api/v1/workflows", "/api/v1/workflows/executions"):
        bad = client.get(path, params={"cursor": "!!"})
        assert bad.status_code == 400 and bad.json()["type"] == "urn:tocsin:problem:bad-query"


def test_workflows_are_read_with_the_read_scope(serve):
    server = serve(KEYS)
    ids = record_runs(server)
    with httpx.Client(base_url=server.base, timeout=10) as http:
        for path in ("/api/v1/workflows", "/api/v1/workflows/executions",
                     f"/api/v1/workflows/executions/{ids['failed']}", "/api/v1/workflows/etl/stats"):
            assert http.get(path).status_code == 401
            assert http.get(path, headers=READER).status_code == 200
