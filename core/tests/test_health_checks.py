"""The built-in check types against real things: a local HTTP server, TCP ports, the disk, storage, memory."""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap

import pytest

from tocsin.builtins.health_checks import resident_bytes
from tocsin.errors import ConfigError
from tocsin.testing import make_monitor

ROUTES = {
    "/ok": (200, "status: ok"),
    "/degraded-body": (200, "status: partial"),
    "/down": (503, "maintenance"),
    "/redirect": (302, ""),
    "/slow": (200, "status: ok"),
}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await reader.readuntil(b"\r\n\r\n")
    path = request.split(b" ")[1].decode()
    if path == "/slow":
        await asyncio.sleep(0.2)
    code, body = ROUTES.get(path, (404, "no such page"))
    writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode())
    await writer.drain()
    writer.close()


@pytest.fixture
async def server():
    instance = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield instance.sockets[0].getsockname()[1]
    instance.close()
    await instance.wait_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run_checks(checks: list[dict], **extra) -> dict:
    monitor = make_monitor(config={"health": {"checks": checks}}, **extra)
    async with monitor:
        return {result.component: result for result in await monitor.health.run_due()}


async def test_http_checks_status_body_and_latency(server):
    base = f"http://127.0.0.1:{server}"
    results = await run_checks([
        {"name": "ok", "type": "http", "url": f"{base}/ok", "body_match": r"status: ok"},
        {"name": "body", "type": "http", "url": f"{base}/degraded-body", "body_match": r"status: ok"},
        {"name": "down", "type": "http", "url": f"{base}/down"},
        {"name": "down-expected", "type": "http", "url": f"{base}/down", "expected_status": [503]},
        {"name": "redirect", "type": "http", "url": f"{base}/redirect"},
        {"name": "slow", "type": "http", "url": f"{base}/slow", "degraded_after": "50ms"},
        {"name": "timeout", "type": "http", "url": f"{base}/slow", "timeout": "50ms"},
        {"name": "refused", "type": "http", "url": f"http://127.0.0.1:{closed_port()}/"},
    ])  # fmt: skip
    assert results["ok"].status == "healthy" and results["ok"].details["status_code"] == 200
    assert results["ok"].observed > 0
    assert (results["body"].status, results["body"].message) == ("unhealthy", "body does not match 'status: ok'")
    assert (results["down"].status, results["down"].message) == ("unhealthy", "HTTP 503 (expected 2xx or 3xx)")
    assert results["down-expected"].status == "healthy"
    assert results["redirect"].status == "healthy"  # 3xx is a pass, as in the api-health-check draft
    assert results["slow"].status == "degraded" and "over 0.05s" in results["slow"].message
    assert results["timeout"].message == "timed out after 0.05s"
    assert results["refused"].status == "unhealthy" and "failed: ConnectError" in results["refused"].message


async def test_tcp_checks_connect_or_say_why_not(server):
    results = await run_checks([
        {"name": "open", "type": "tcp", "host": "127.0.0.1", "port": server},
        {"name": "closed", "type": "tcp", "host": "127.0.0.1", "port": closed_port()},
    ])  # fmt: skip
    assert results["open"].status == "healthy" and results["open"].message.startswith("connected to 127.0.0.1")
    assert results["closed"].status == "unhealthy" and "cannot connect to 127.0.0.1" in results["closed"].message


async def test_disk_check_thresholds_in_percent_free(tmp_path):
    results = await run_checks([
        {"name": "roomy", "type": "disk", "path": str(tmp_path), "min_free_percent": 0, "degraded_below_percent": 0},
        {"name": "full", "type": "disk", "path": str(tmp_path), "min_free_percent": 100},
        {"name": "tight", "type": "disk", "path": str(tmp_path), "min_free_percent": 0,
         "degraded_below_percent": 100},
        {"name": "missing", "type": "disk", "path": str(tmp_path / "nope")},
    ])  # fmt: skip
    assert results["roomy"].status == "healthy" and 0 < results["roomy"].observed <= 100
    assert results["roomy"].details["total_bytes"] > results["roomy"].details["free_bytes"] > 0
    assert results["full"].status == "unhealthy" and "(below 100%)" in results["full"].message
    assert results["tight"].status == "degraded"
    assert results["missing"].status == "unhealthy" and "FileNotFoundError" in results["missing"].message


async def test_storage_and_memory_checks():
    rss_mb = resident_bytes() / 2**20
    results = await run_checks([
        {"name": "store", "type": "storage"},
        {"name": "mem", "type": "memory"},
        {"name": "mem-low", "type": "memory", "max_rss_mb": 1},
        {"name": "mem-warn", "type": "memory", "degraded_rss_mb": 1},
    ])  # fmt: skip
    assert results["store"].status == "healthy" and results["store"].message.startswith("memory stats")
    assert results["mem"].status == "healthy" and results["mem"].observed == pytest.approx(rss_mb, rel=0.5)
    assert results["mem-low"].status == "unhealthy" and "over 1 MiB" in results["mem-low"].message
    assert results["mem-warn"].status == "degraded"


async def test_callable_check_from_a_config_target(tmp_path, monkeypatch):
    (tmp_path / "app_checks.py").write_text(textwrap.dedent("""
        calls = []
        def cache():
            calls.append(1)
            return "degraded"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    results = await run_checks([{"name": "cache", "type": "callable", "target": "app_checks:cache"}])
    assert results["cache"].status == "degraded"
    assert sys.modules["app_checks"].calls == [1]
    for target, error in [("app_checks", "must look like"), ("app_checks:nope", "cannot be imported"),
                          ("app_checks:calls", "is a list, not a function")]:
        with pytest.raises(ConfigError, match=error):
            make_monitor(config={"health": {"checks": [{"name": "c", "type": "callable", "target": target}]}})


def test_bad_check_options_are_config_errors_with_paths():
    with pytest.raises(ConfigError) as caught:
        make_monitor(config={"health": {"checks": [
            {"name": "a", "type": "http", "url": "http://x", "body_match": "("},
            {"name": "b", "type": "disk", "min_free_percent": 150},
            {"name": "c", "type": "tcp", "host": "db"},
            {"name": "d", "type": "heartbeat", "period": "often"},
        ]}})  # fmt: skip
    text = str(caught.value)
    assert "health.checks[0]: body_match: not a valid regular expression" in text
    assert "health.checks[1].min_free_percent" in text
    assert "health.checks[2].port: missing required key" in text
    assert "health.checks[3].period: expected a duration" in text
