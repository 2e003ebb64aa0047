"""Rules over a real socket: the configured rules with their evaluation status, one rule by name, and backtests
of a configured rule or a rule given whole over history written to storage."""

from __future__ import annotations

import httpx
import pytest

from tocsin.ext import MetricRollup

MINUTE = 60 * 10**9

CONFIG = {
    "alerting": {"rules": [
        {"name": "queue-deep", "metric": "queue_depth", "aggregate": "last", "window": "5m", "by": ["queue"],
         "threshold": 100, "channels": ["ops"], "annotations": {"summary": "{{ labels.queue }} is deep"}},
        {"name": "errors", "kind": "log", "query": "timeout", "level": "error", "aggregate": "count",
         "threshold": 5, "severity": "critical", "for": "2m"},
    ]},
    "channels": [{"name": "ops", "type": "log"}],
}


@pytest.fixture
def rules(serve):
    server = serve(CONFIG)
    with httpx.Client(base_url=server.base, timeout=10) as http:
        yield server, http


def history(server, values: list[float], *, queue: str = "mail") -> int:
    """Write one gauge rollup per minute, an hour ago onwards; the first minute's start."""
    base = (server.monitor.clock.now_ns() // MINUTE) * MINUTE - 60 * MINUTE
    rollups = [MetricRollup(name="queue_depth", kind="gauge", labels={"queue": queue}, start_ns=base + i * MINUTE,
                            interval_s=60.0, count=1, sum=v, min=v, max=v, last=v) for i, v in enumerate(values)]
    server.call(server.monitor.storage.write_metrics(rollups))
    return base


def test_rules_are_listed_with_their_config_and_evaluation_status(rules):
    server, http = rules
    server.call(server.monitor.alerting.evaluate())
    found = http.get("/api/v1/rules").json()
    assert [rule["name"] for rule in found] == ["queue-deep", "errors"]
    deep, errors = found
    assert (deep["kind"], deep["severity"], errors["kind"], errors["severity"]) == ("metric", "warning", "log",
                                                                                     "critical")
    assert deep["config"]["threshold"] == 100 and deep["config"]["by"] == ["queue"]
    assert deep["config"]["window"] == 300 and deep["config"]["channels"] == ["ops"]
    assert errors["config"]["for"] == 120 and errors["config"]["query"] == "timeout"
    assert deep["status"]["evaluations"] >= 1 and deep["status"]["last_eval_ns"] is not None
    assert deep["status"]["health"] in ("ok", "nodata") and deep["status"]["failures"] == 0


def test_a_rule_by_name_and_an_unknown_one_is_404(rules):
    _, http = rules
    rule = http.get("/api/v1/rules/errors").json()
    assert rule["name"] == "errors" and rule["config"]["level"] == "error"
    missing = http.get("/api/v1/rules/nope")
    assert missing.status_code == 404 and missing.json()["type"] == "urn:tocsin:problem:not-found"


def test_rules_added_in_code_are_listed_too(rules):
    server, http = rules
    server.monitor.alerting.add_rule({"name": "added", "metric": "x", "threshold": 1})
    assert http.get("/api/v1/rules/added").json()["status"]["health"] == "unknown"
    assert [rule["name"] for rule in http.get("/api/v1/rules").json()] == ["queue-deep", "errors", "added"]


def test_backtest_of_a_rule_given_whole_replays_history(rules):
    server, http = rules
    base = history(server, [10, 200, 200, 200, 10])
    spec = {"name": "tighter", "metric": "queue_depth", "aggregate": "last", "window": "1m", "threshold": 100,
            "for": "1m"}
    response = http.post("/api/v1/rules/backtest", json={"rule": spec, "start": base, "end": base + 6 * MINUTE,
                                                         "step": "1m"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["rule"], result["evaluations"], result["step_s"]) == ("tighter", 6, 60.0)
    timeline = [((t["time_ns"] - base) // MINUTE, t["from_state"], t["to_state"]) for t in result["transitions"]]
    assert timeline == [(1, "inactive", "pending"), (2, "pending", "firing"), (4, "firing", "resolved")]
    assert [((n["time_ns"] - base) // MINUTE, n["kind"]) for n in result["notifications"]] == [(2, "firing"),
                                                                                            (4, "resolved")]
    assert result["errors"] == [] and result["alerts"] == []
    # nothing was saved, the rule was not added
    assert http.get("/api/v1/alerts").json()["items"] == []
    assert "tighter" not in [rule["name"] for rule in http.get("/api/v1/rules").json()]


def test_backtest_of_a_configured_rule_by_name_with_rfc3339_times(rules):
    server, http = rules
    base = history(server, [200, 200, 10])
    import datetime as dt

    start = dt.datetime.fromtimestamp(base / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = http.post("/api/v1/rules/backtest", json={"rule": "queue-deep", "start": start,
                                                       "end": str(base + 4 * MINUTE), "step": 60}).json()
    assert [(t["to_state"], t["time_ns"] - base) for t in result["transitions"]] == [("firing", 0),
                                                                                   ("resolved", 2 * MINUTE)]
    assert {tuple(n["channels"]) for n in result["notifications"]} == {("ops",)}
    assert result["notifications"][0]["labels"]["queue"] == "mail"


@pytest.mark.parametrize(("body", "field"), [
    ({"rule": "nope", "start": "1h"}, "rule"),
    ({"rule": "queue-deep", "start": "yesterday"}, "start"),
    ({"rule": "queue-deep", "start": "1h", "end": "2h"}, "end"),
    ({"rule": "queue-deep", "start": "1h", "step": "often"}, "step"),
    ({"rule": "queue-deep", "start": "1h", "step": 0}, "step"),
    ({"rule": "queue-deep"}, "start"),
    ({"rule": "queue-deep", "start": "1h", "extra": 1}, "extra"),
])
def test_bad_backtest_bodies_are_400_naming_the_field(rules, body, field):
    _, http = rules
    response = http.post("/api/v1/rules/backtest", json=body)
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    # a missing or unknown key is reported on the body as a whole, naming the key
    assert error["field"] == field or (error["field"] == "data" and f"`{field}`" in error["reason"])


def test_a_bad_rule_spec_is_422_with_every_problem_and_a_huge_backtest_is_refused(rules):
    _, http = rules
    bad = http.post("/api/v1/rules/backtest", json={"rule": {"name": "x", "metric": "q", "threshold": "high"},
                                                     "start": "1h"})
    assert bad.status_code == 422 and bad.json()["type"] == "urn:tocsin:problem:invalid-config"
    assert [error["field"] for error in bad.json()["errors"]] == ["rule 'x'.threshold"]
    channel = http.post("/api/v1/rules/backtest", json={"rule": {"name": "x", "metric": "q", "channels": ["pager"]},
                                                         "start": "1h"})
    assert channel.status_code == 422 and "unknown channel 'pager'" in channel.text
    huge = http.post("/api/v1/rules/backtest", json={"rule": "queue-deep", "start": "30d", "step": "1s"})
    assert huge.status_code == 400 and huge.json()["type"] == "urn:tocsin:problem:bad-query"
    assert "at most 100000" in huge.json()["detail"]


def test_a_backtest_needs_only_the_read_scope(serve):
    server = serve({**CONFIG, "server": {"api_keys": [
        {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]}]}})
    with httpx.Client(base_url=server.base, timeout=10) as http:
        headers = {"Authorization": "Bearer r-secret-0123456789abcdef"}
        assert http.get("/api/v1/rules", headers=headers).status_code == 200
        assert http.get("/api/v1/rules").status_code == 401
        response = http.post("/api/v1/rules/backtest", json={"rule": "queue-deep", "start": "10m"}, headers=headers)
        assert response.status_code == 200 and response.json()["evaluations"] == 10


REPO = __import__("pathlib").Path(__file__).resolve().parents[3]


def test_rules_test_runs_an_inline_rule_test_file_and_reports_each_test(client):
    text = (REPO / "examples" / "rules" / "latency.test.toml").read_text()
    response = client.post("/api/v1/rules/test", content=text, headers={"content-type": "application/toml"})
    assert response.status_code == 200
    report = response.json()
    assert report["failed"] == 0 and report["passed"] == len(report["tests"]) >= 1
    broken = text.replace('expect = [{ labels = { route = "/checkout" }, state = "pending" }]',
                          'expect = [{ labels = { route = "/checkout" }, state = "firing" }]', 1)
    failed = client.post("/api/v1/rules/test", content=broken).json()
    assert failed["failed"] == 1 and "pending" in "".join(failed["tests"][0]["problems"])


def test_rules_test_refuses_a_file_that_names_a_config_on_the_server_and_bad_toml(client):
    response = client.post("/api/v1/rules/test", content='config = "/etc/passwd"\n[[tests]]\nname = "x"\n')
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "config"
    bad = client.post("/api/v1/rules/test", content="[[tests\n")
    assert bad.status_code == 422 and bad.json()["type"] == "urn:tocsin:problem:invalid-config"
    assert client.post("/api/v1/rules/test", content=b"\xff\xfe").status_code == 400
