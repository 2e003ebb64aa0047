"""Alerts over a real socket: listing with filters and paging, one alert with its transitions, acknowledge and
resolve (who, why, how long), the transitions of a time range, and the scopes the actions need."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from tocsin.ext import Alert, AlertTransition

RULES = {"alerting": {"rules": [
    {"name": "queue-deep", "metric": "queue_depth", "aggregate": "last", "window": "5m", "by": ["queue"],
     "threshold": 100, "severity": "warning"},
    {"name": "disk-full", "metric": "disk_used_ratio", "aggregate": "last", "window": "5m", "by": ["disk"],
     "threshold": 0.9, "severity": "critical"},
]}}

KEYS = {"server": {"api_keys": [
    {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]},
    {"name": "ann", "key": "w-secret-0123456789abcdef", "scopes": ["read", "write"]},
]}}
READER = {"Authorization": "Bearer r-secret-0123456789abcdef"}
WRITER = {"Authorization": "Bearer w-secret-0123456789abcdef"}


def fire(server, **gauges: dict[str, float]) -> dict[str, str]:
    """Record gauge values ({metric: {label_value: value}}), flush, evaluate once; the alerts' fingerprints by
    their `queue`/`disk` label."""

    async def run() -> list[Alert]:
        monitor = server.monitor
        for metric, values in gauges.items():
            label = "queue" if metric == "queue_depth" else "disk"
            for value_label, value in values.items():
                monitor.metrics.gauge(metric).set(value, **{label: value_label})
        await monitor.flush()
        report = await monitor.alerting.evaluate()
        return report.alerts

    alerts = server.call(run())
    return {alert.labels.get("queue") or alert.labels.get("disk"): alert.fingerprint for alert in alerts}


@pytest.fixture
def alerting(serve):
    server = serve(RULES)
    fingerprints = fire(server, queue_depth={"mail": 250, "jobs": 500, "idle": 3}, disk_used_ratio={"sda": 0.95})
    with httpx.Client(base_url=server.base, timeout=10) as http:
        yield server, http, fingerprints


def test_alerts_are_listed_and_filtered_by_state_rule_severity_and_labels(alerting):
    _, http, fp = alerting
    assert set(fp) == {"mail", "jobs", "sda"}
    everything = http.get("/api/v1/alerts").json()
    assert {a["fingerprint"] for a in everything["items"]} == set(fp.values())
    assert everything["total"] == 3 and everything["next_cursor"] is None
    assert {a["state"] for a in everything["items"]} == {"firing"}

    by_rule = http.get("/api/v1/alerts", params={"rule": "queue-deep"}).json()["items"]
    assert {a["labels"]["queue"] for a in by_rule} == {"mail", "jobs"}
    critical = http.get("/api/v1/alerts", params={"severity": "critical"}).json()["items"]
    assert [a["fingerprint"] for a in critical] == [fp["sda"]]
    selected = http.get("/api/v1/alerts", params={"match[]": 'queue=~"m.*"'}).json()["items"]
    assert [a["fingerprint"] for a in selected] == [fp["mail"]]
    anded = http.get("/api/v1/alerts", params=[("match[]", 'alertname="queue-deep"'), ("match[]", 'queue!="mail"')])
    assert [a["fingerprint"] for a in anded.json()["items"]] == [fp["jobs"]]
    assert http.get("/api/v1/alerts", params={"state": "pending"}).json()["items"] == []
    several = http.get("/api/v1/alerts", params=[("state", "pending"), ("state", "firing")]).json()["items"]
    assert len(several) == 3


def test_alerts_page_with_a_cursor(alerting):
    _, http, fp = alerting
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = http.get("/api/v1/alerts", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += [a["fingerprint"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2 and sorted(seen) == sorted(fp.values())


@pytest.mark.parametrize(("query", "field"), [
    ({"state": "burning"}, "state"),
    ({"severity": "dire"}, "severity"),
    ({"match[]": "queue"}, "match[]"),
    ({"limit": 0}, "limit"),
    ({"limit": "many"}, "limit"),
])
def test_bad_alert_filters_are_400_naming_the_field(alerting, query, field):
    _, http, _ = alerting
    response = http.get("/api/v1/alerts", params=query)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_a_bad_cursor_is_a_bad_query(alerting):
    _, http, _ = alerting
    response = http.get("/api/v1/alerts", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400 and response.json()["type"] == "urn:tocsin:problem:bad-query"


def test_one_alert_comes_with_its_transitions_and_an_unknown_one_is_404(alerting):
    _, http, fp = alerting
    detail = http.get(f"/api/v1/alerts/{fp['mail']}").json()
    assert detail["alert"]["labels"] == {"queue": "mail", "alertname": "queue-deep", "severity": "warning"}
    assert detail["alert"]["value"] == 250
    assert [(t["from_state"], t["to_state"]) for t in detail["transitions"]] == [("inactive", "firing")]
    missing = http.get("/api/v1/alerts/0123456789abcdef")
    assert missing.status_code == 404 and missing.json()["type"] == "urn:tocsin:problem:not-found"
    assert "0123456789abcdef" in missing.json()["detail"]


def test_acknowledge_records_who_why_and_until_when(alerting):
    server, http, fp = alerting
    before = server.monitor.clock.now_ns()
    response = http.post(f"/api/v1/alerts/{fp['mail']}/acknowledge",
                         json={"by": "ann", "comment": "restarting the worker", "for": "2h"})
    assert response.status_code == 200
    alert = response.json()
    assert alert["handling"] == "acknowledged" and alert["state"] == "firing"
    assert alert["acknowledged_by"] == "ann" and alert["ack_comment"] == "restarting the worker"
    assert before + 2 * 3600 * 10**9 <= alert["ack_until_ns"] <= server.monitor.clock.now_ns() + 2 * 3600 * 10**9
    history = http.get(f"/api/v1/alerts/{fp['mail']}").json()["transitions"]
    assert history[-1]["actor"] == "ann" and history[-1]["to_state"] == "acknowledged"
    stored = server.call(server.monitor.storage.get_alert(fp["mail"]))
    assert stored.handling == "acknowledged"
    # the other alerts are untouched
    assert http.get(f"/api/v1/alerts/{fp['jobs']}").json()["alert"]["handling"] == "active"


def test_by_defaults_to_the_api_key_name_and_writes_need_the_write_scope(serve):
    server = serve({**RULES, **KEYS})
    fp = fire(server, queue_depth={"mail": 250})
    with httpx.Client(base_url=server.base, timeout=10) as http:
        path = f"/api/v1/alerts/{fp['mail']}"
        assert http.get(path, headers=READER).status_code == 200
        for action in ("acknowledge", "resolve"):
            refused = http.post(f"{path}/{action}", json={}, headers=READER)
            assert refused.status_code == 403 and refused.json()["type"] == "urn:tocsin:problem:forbidden"
        assert http.post(f"{path}/acknowledge", json={}).status_code == 401
        acked = http.post(f"{path}/acknowledge", headers=WRITER)  # no body at all
        assert acked.status_code == 200
        assert acked.json()["acknowledged_by"] == "ann" and acked.json()["ack_until_ns"] is None
        resolved = http.post(f"{path}/resolve", json={"comment": "fixed in deploy 412"}, headers=WRITER)
        assert resolved.status_code == 200 and resolved.json()["handling"] == "resolved"
        last = http.get(path, headers=READER).json()["transitions"][-1]
        assert (last["to_state"], last["actor"]) == ("resolved", "ann")
        assert last["reason"] == "resolved by hand by ann: fixed in deploy 412"


def test_resolve_by_hand_and_a_finished_alert_is_a_conflict(alerting):
    server, http, fp = alerting
    resolved = http.post(f"/api/v1/alerts/{fp['jobs']}/resolve", json={"by": "bob", "comment": "drained"})
    assert resolved.status_code == 200
    assert resolved.json()["handling"] == "resolved"
    fire(server, queue_depth={"jobs": 1})  # the condition clears: the alert is over
    assert http.get(f"/api/v1/alerts/{fp['jobs']}").json()["alert"]["state"] in ("inactive", "resolved")
    for action in ("acknowledge", "resolve"):
        conflict = http.post(f"/api/v1/alerts/{fp['jobs']}/{action}", json={"by": "bob"})
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["type"] == "urn:tocsin:problem:conflict"
    assert http.post("/api/v1/alerts/0123456789abcdef/resolve", json={}).status_code == 404
    assert http.post("/api/v1/alerts/0123456789abcdef/acknowledge", json={}).status_code == 404


@pytest.mark.parametrize(("action", "body", "field"), [
    ("acknowledge", {"for": "soon"}, "for"),
    ("acknowledge", {"for": "0s"}, "for"),
    ("acknowledge", {"by": "  "}, "by"),
    ("acknowledge", {"comment": 5}, "comment"),
    ("resolve", {"for": "1h"}, "for"),
])
def test_bad_handling_bodies_are_400_naming_the_field(alerting, action, body, field):
    _, http, fp = alerting
    response = http.post(f"/api/v1/alerts/{fp['mail']}/{action}", json=body)
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert http.get(f"/api/v1/alerts/{fp['mail']}").json()["alert"]["handling"] == "active"


def test_transitions_of_a_time_range(alerting):
    server, http, fp = alerting
    http.post(f"/api/v1/alerts/{fp['sda']}/acknowledge", json={"by": "ann"})
    found = http.get("/api/v1/alerts/transitions", params={"start": "1h"}).json()
    pairs = sorted((t["fingerprint"], t["to_state"]) for t in found)
    assert pairs == sorted([(fp["mail"], "firing"), (fp["jobs"], "firing"), (fp["sda"], "firing"),
                            (fp["sda"], "acknowledged")])
    assert [t["time_ns"] for t in found] == sorted(t["time_ns"] for t in found)
    now = server.monitor.clock.now_ns()
    assert http.get("/api/v1/alerts/transitions", params={"start": 0, "end": 1}).json() == []
    assert len(http.get("/api/v1/alerts/transitions", params={"end": now + 1}).json()) == 4
    reversed_range = http.get("/api/v1/alerts/transitions", params={"start": now, "end": now - 1})
    assert reversed_range.status_code == 400 and reversed_range.json()["errors"][0]["field"] == "end"
    bad = http.get("/api/v1/alerts/transitions", params={"start": "yesterday"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "start"


def test_responses_decode_as_the_models(alerting):
    _, http, fp = alerting
    msgspec.convert(http.get("/api/v1/alerts").json()["items"][0], Alert)
    detail = http.get(f"/api/v1/alerts/{fp['mail']}").json()
    assert msgspec.convert(detail["alert"], Alert).fingerprint == fp["mail"]
    assert msgspec.convert(detail["transitions"][0], AlertTransition).to_state == "firing"
