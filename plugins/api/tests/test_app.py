"""The API as a whole, over a real socket: probes, keys and scopes, problem+json errors, limits, headers."""

from __future__ import annotations

import httpx
import pytest

KEYS = {"server": {"api_keys": [
    {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]},
    {"name": "writer", "key": "w-secret-0123456789abcdef", "scopes": ["read", "write"]},
    {"name": "root", "key": "a-secret-0123456789abcdef", "scopes": ["admin"]},
]}}


def test_probes_answer_without_a_key_and_the_openapi_document_is_served(serve):
    server = serve(KEYS)
    with httpx.Client(base_url=server.base) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/api/v1/readyz").json() == {"status": "ready", "storage": "sqlite"}
        schema = http.get("/schema/openapi.json").json()
        assert "/api/v1/stats" in schema["paths"] and schema["info"]["title"] == "tocsin"


def test_keys_and_scopes_are_enforced_and_answers_are_problem_json(serve):
    server = serve(KEYS)
    with httpx.Client(base_url=server.base) as http:
        missing = http.get("/api/v1/stats")
        assert missing.status_code == 401
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert missing.json()["type"] == "urn:tocsin:problem:unauthorized"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = http.get("/api/v1/stats", headers={"Authorization": "Bearer not-a-key"})
        assert wrong.status_code == 401
        ok = http.get("/api/v1/stats", headers={"Authorization": "Bearer r-secret-0123456789abcdef"})
        assert ok.status_code == 200 and ok.json()["storage_backend"] == "sqlite"
        assert "r-secret" not in ok.text and "w-secret" not in ok.text


def test_an_open_api_serves_everything_and_sets_security_headers(client):
    response = client.get("/api/v1/plugins")
    assert response.status_code == 200
    names = {plugin["name"] for plugin in response.json()}
    assert "tocsin.builtins.memory_storage" in names
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in response.headers


def test_unknown_paths_and_bad_parameters_are_problems_naming_the_field(client):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["type"] == "urn:tocsin:problem:not-found"


def test_a_body_over_the_limit_is_413(serve):
    server = serve({"server": {"max_body_bytes": 1024}})
    with httpx.Client(base_url=server.base) as http:
        response = http.post("/api/v1/logs", content=b"x" * 4096, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.json()["type"] == "urn:tocsin:problem:too-large"


def test_the_rate_limit_answers_429_with_retry_after(serve):
    server = serve({"server": {"rate_limit": 5}})
    with httpx.Client(base_url=server.base) as http:
        codes = [http.get("/api/v1/plugins").status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and codes[-1] == 429
        limited = http.get("/api/v1/plugins")
        assert limited.json()["type"] == "urn:tocsin:problem:rate-limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert http.get("/healthz").status_code == 200  # probes are never limited


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                               ("[::1]", True), ("0.0.0.0", False), ("10.1.2.3", False)])
def test_only_loopback_hosts_count_as_loopback(host, loopback):
    from tocsin_api.serve import is_loopback

    assert is_loopback(host) is loopback


def test_a_bad_record_in_an_array_body_is_named_by_its_index_and_field(client):
    response = client.post("/api/v1/logs", json=[
        {"time_ns": 1, "level": "info", "message": "fine"},
        {"time_ns": 2, "level": "loud", "message": "bad level"},
    ])
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["field"], error["source"]) == ("[1].level", "body")


def test_a_bad_query_parameter_names_its_source_plainly(client):
    response = client.get("/api/v1/logs", params={"limit": "many"})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["field"], error["source"]) == ("limit", "query")


def test_deeply_nested_bodies_are_400_on_every_ingest_route(client):
    for path in ("/api/v1/logs", "/api/v1/traces", "/api/v1/metrics"):
        response = client.post(path, content=b"[" * 100_000, headers={"content-type": "application/json"})
        assert response.status_code == 400, path


def test_stats_say_which_process_leads(client, server):
    stats = client.get("/api/v1/stats").json()
    assert stats["leader"] is True and stats["holder"] == server.monitor.holder
    assert stats["lease_holder"] == server.monitor.holder


def test_stats_show_each_buffers_budget_overflow_policy_and_drops(client, server):
    buffers = client.get("/api/v1/stats").json()["buffers"]
    assert set(buffers) == {"logs", "spans", "workflows"}
    logs = buffers["logs"]
    assert logs["overflow"] == server.monitor.config.logging.overflow and logs["max_bytes"] == 64 * 2**20
    assert logs["dropped"] == server.monitor.log_buffer.dropped and logs["blocked"] == 0


def test_every_operation_of_the_api_is_documented_in_docs_api_md(client):
    import pathlib
    import re

    def shape(text: str) -> str:  # path parameters may be named differently in prose
        return re.sub(r"\{[^}]*\}", "{}", text)

    doc = shape((pathlib.Path(__file__).resolve().parents[3] / "docs" / "api.md").read_text())
    paths = client.get("/schema/openapi.json").json()["paths"]
    missing = [f"{method.upper()} {path}" for path, operations in paths.items() for method in operations
               if method in ("get", "post", "put", "delete", "patch")
               and shape(f"{method.upper()} {path}") not in doc]
    assert missing == []
