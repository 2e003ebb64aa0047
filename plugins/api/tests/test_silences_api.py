"""Silences over a real socket: create (selector text or matchers; ends, duration or until resolved), list by
state, read, expire, preview the alerts one would mute, bad bodies naming the field, and the write scope."""

from __future__ import annotations

import httpx
import pytest

HOUR = 3600 * 10**9

CONFIG = {"alerting": {"rules": [
    {"name": "queue-deep", "metric": "queue_depth", "aggregate": "last", "by": ["queue", "env"], "threshold": 100},
]}}


def fire(server, values: dict[tuple[str, str], float]) -> dict[str, str]:
    """Set queue_depth per (queue, env), flush, evaluate; fingerprints by queue."""

    async def run():
        for (queue, env), value in values.items():
            server.monitor.metrics.gauge("queue_depth").set(value, queue=queue, env=env)
        await server.monitor.flush()
        return (await server.monitor.alerting.evaluate()).alerts

    return {alert.labels["queue"]: alert.fingerprint for alert in server.call(run())}


@pytest.fixture
def silences(serve):
    server = serve(CONFIG)
    fingerprints = fire(server, {("mail", "prod"): 250, ("jobs", "prod"): 300, ("batch", "staging"): 500,
                                 ("idle", "prod"): 1})
    with httpx.Client(base_url=server.base, timeout=10) as http:
        yield server, http, fingerprints


def test_create_a_silence_and_read_it_back(silences):
    server, http, _ = silences
    before = server.monitor.clock.now_ns()
    response = http.post("/api/v1/silences", json={"matchers": 'queue="mail", env=~"prod|staging"',
                                                   "duration": "2h", "comment": "failover test"})
    assert response.status_code == 201, response.text
    silence = response.json()
    assert silence["state"] == "active" and silence["created_by"] == "anonymous"
    assert silence["matchers"] == [{"label": "queue", "op": "=", "value": "mail"},
                                   {"label": "env", "op": "=~", "value": "prod|staging"}]
    assert silence["ends_ns"] - silence["starts_ns"] == 2 * HOUR and silence["starts_ns"] >= before
    assert silence["comment"] == "failover test" and silence["until_resolved"] is False
    assert http.get(f"/api/v1/silences/{silence['id']}").json() == silence
    stored = server.call(server.monitor.storage.list_silences())
    assert [s.id for s in stored] == [silence["id"]]


def test_the_next_evaluation_applies_a_silence(silences):
    server, http, fp = silences
    silence = http.post("/api/v1/silences", json={"matchers": ['queue="mail"'], "duration": "1h"}).json()
    fire(server, {("mail", "prod"): 260})
    alert = http.get(f"/api/v1/alerts/{fp['mail']}").json()["alert"]
    assert alert["silenced_by"] == [silence["id"]]
    assert http.get(f"/api/v1/alerts/{fp['jobs']}").json()["alert"]["silenced_by"] == []


def test_matchers_as_objects_explicit_times_and_until_resolved(silences):
    server, http, _ = silences
    now = server.monitor.clock.now_ns()
    later = http.post("/api/v1/silences", json={
        "matchers": [{"label": "env", "op": "=", "value": "staging"}, 'queue!="idle"'],
        "starts": now + HOUR, "ends": "2099-01-01T00:00:00Z", "created_by": "bob"}).json()
    assert later["state"] == "pending" and later["created_by"] == "bob"
    assert later["starts_ns"] == now + HOUR and later["ends_ns"] == 4070908800 * 10**9
    resolving = http.post("/api/v1/silences", json={"matchers": 'queue="jobs"', "until_resolved": True}).json()
    assert resolving["until_resolved"] is True and resolving["ends_ns"] == 2**63 - 1


def test_silences_are_listed_by_state_and_expired_by_delete(silences):
    server, http, _ = silences
    now = server.monitor.clock.now_ns()
    active = http.post("/api/v1/silences", json={"matchers": 'queue="mail"', "duration": "1h"}).json()
    pending = http.post("/api/v1/silences", json={"matchers": 'queue="jobs"', "starts": now + HOUR,
                                                  "duration": "1h"}).json()
    expired = http.delete(f"/api/v1/silences/{active['id']}")
    assert expired.status_code == 200
    assert expired.json()["state"] == "expired" and expired.json()["ends_ns"] <= server.monitor.clock.now_ns()
    everything = http.get("/api/v1/silences").json()
    assert {(s["id"], s["state"]) for s in everything} == {(active["id"], "expired"), (pending["id"], "pending")}
    assert [s["id"] for s in http.get("/api/v1/silences", params={"state": "expired"}).json()] == [active["id"]]
    assert [s["id"] for s in http.get("/api/v1/silences", params={"state": "pending"}).json()] == [pending["id"]]
    assert http.get("/api/v1/silences", params={"state": "active"}).json() == []
    # expiring twice changes nothing; an unknown id is 404
    again = http.delete(f"/api/v1/silences/{active['id']}")
    assert again.status_code == 200 and again.json()["ends_ns"] == expired.json()["ends_ns"]
    for method in (http.get, http.delete):
        missing = method("/api/v1/silences/0123abcd")
        assert missing.status_code == 404 and missing.json()["type"] == "urn:tocsin:problem:not-found"
    bad = http.get("/api/v1/silences", params={"state": "asleep"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "state"


def test_preview_lists_the_alerts_in_play_a_silence_would_mute(silences):
    _, http, fp = silences
    prod = http.post("/api/v1/silences/preview", json={"matchers": 'env="prod"'})
    assert prod.status_code == 200
    assert sorted(alert["fingerprint"] for alert in prod.json()) == sorted([fp["mail"], fp["jobs"]])
    listed = http.post("/api/v1/silences/preview", json={"matchers": ['env=~"prod|staging"', 'queue!="mail"']})
    assert sorted(alert["fingerprint"] for alert in listed.json()) == sorted([fp["jobs"], fp["batch"]])
    assert http.post("/api/v1/silences/preview", json={"matchers": 'queue="idle"'}).json() == []
    assert http.get("/api/v1/silences").json() == []  # nothing was created
    bad = http.post("/api/v1/silences/preview", json={"matchers": "queue"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "matchers"


@pytest.mark.parametrize(("body", "field"), [
    ({"matchers": "queue", "duration": "1h"}, "matchers"),
    ({"matchers": 'queue=~"("', "duration": "1h"}, "matchers"),
    ({"matchers": [{"label": "queue", "op": "=~", "value": "("}], "duration": "1h"}, "matchers"),
    ({"matchers": 'queue=~".*"', "duration": "1h"}, "matchers"),
    ({"matchers": [], "duration": "1h"}, "matchers"),
    ({"matchers": 5, "duration": "1h"}, "matchers"),
    ({"matchers": 'queue="mail"'}, "ends"),
    ({"matchers": 'queue="mail"', "ends": "2020-01-01T00:00:00Z"}, "ends"),
    ({"matchers": 'queue="mail"', "ends": "someday"}, "ends"),
    ({"matchers": 'queue="mail"', "duration": "long"}, "duration"),
    ({"matchers": 'queue="mail"', "duration": "0s"}, "duration"),
    ({"matchers": 'queue="mail"', "duration": "1h", "ends": "2099-01-01T00:00:00Z"}, "duration"),
    ({"matchers": 'queue="mail"', "duration": "1h", "starts": "noon"}, "starts"),
    ({"matchers": 'queue="mail"', "duration": "1h", "created_by": " "}, "created_by"),
])
def test_bad_silences_are_400_naming_the_field_and_nothing_is_stored(silences, body, field):
    server, http, _ = silences
    response = http.post("/api/v1/silences", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "urn:tocsin:problem:validation"
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert server.call(server.monitor.storage.list_silences()) == []


def test_creating_and_expiring_need_the_write_scope(serve):
    server = serve({**CONFIG, "server": {"api_keys": [
        {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]},
        {"name": "ann", "key": "w-secret-0123456789abcdef", "scopes": ["read", "write"]}]}})
    reader = {"Authorization": "Bearer r-secret-0123456789abcdef"}
    writer = {"Authorization": "Bearer w-secret-0123456789abcdef"}
    with httpx.Client(base_url=server.base, timeout=10) as http:
        body = {"matchers": 'queue="mail"', "duration": "1h"}
        refused = http.post("/api/v1/silences", json=body, headers=reader)
        assert refused.status_code == 403 and refused.json()["type"] == "urn:tocsin:problem:forbidden"
        created = http.post("/api/v1/silences", json=body, headers=writer).json()
        assert created["created_by"] == "ann"  # the key's name by default
        assert http.delete(f"/api/v1/silences/{created['id']}", headers=reader).status_code == 403
        assert http.get(f"/api/v1/silences/{created['id']}", headers=reader).json()["state"] == "active"
        preview = http.post("/api/v1/silences/preview", json={"matchers": body["matchers"]}, headers=reader)
        assert preview.status_code == 200
        assert http.delete(f"/api/v1/silences/{created['id']}", headers=writer).json()["state"] == "expired"
