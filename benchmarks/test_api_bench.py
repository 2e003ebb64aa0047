"""tocsin-api over a real socket: `POST /logs` committed per second against a bare Litestar handler that only
decodes the same body, and the WebSocket fan-out of one alert to 200 connected clients.

Both servers are uvicorn on loopback in this process's background threads; the client is httpx with a kept-
alive connection. One round posts one batch of 1,000 records, so records/s = 1,000 / the round's time; the
tocsin server commits each batch to a SQLite file before it answers.

Run: uv run pytest benchmarks/test_api_bench.py --benchmark-only
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time

import httpx
import msgspec
import pytest
import tocsin_api
import tocsin_sqlite
import uvicorn
from litestar import Litestar, post
from tocsin_api.testing import LiveServer, free_port
from websockets.asyncio.client import connect

from tocsin.models import Event, LogRecord
from tocsin.testing import make_monitor

BATCH = 1_000
ROUNDS = 30
CLIENTS = 200


def _batch(now_ns: int) -> bytes:
    return msgspec.json.encode([
        LogRecord(time_ns=now_ns + i, level="info", message=f"order {i} shipped to warehouse {i % 7}",
                  service="shop", attributes={"order": i, "region": "eu"})
        for i in range(BATCH)])


@post("/api/v1/logs", status_code=202)
async def decode_only(data: list[LogRecord]) -> dict[str, int]:
    """The peer: the same route and body type, decoded by Litestar and msgspec, stored nowhere."""
    return {"accepted": len(data)}


class BareServer:
    """uvicorn serving the decode-only handler on loopback."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(Litestar([decode_only]), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def tocsin_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "bench.db"
    monitor = make_monitor(tocsin_api, tocsin_sqlite, config={
        "storage": {"backend": "sqlite", "path": str(path)}, "server": {"rate_limit": 0}})
    server = LiveServer(monitor).start()
    yield server
    server.stop()


def _post_rounds(benchmark, base: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        def post_batch() -> None:
            response = http.post("/api/v1/logs", content=_batch(time.time_ns()),
                                 headers={"content-type": "application/json"})
            assert response.status_code == 202 and response.json()["accepted"] == BATCH

        benchmark.pedantic(post_batch, rounds=ROUNDS, warmup_rounds=2)
    benchmark.extra_info["records_per_round"] = BATCH
    benchmark.extra_info["records_per_s"] = round(BATCH / benchmark.stats.stats.median)


@pytest.mark.benchmark(group="POST /api/v1/logs, 1,000 records per request")
def test_ingest_logs_tocsin(benchmark, tocsin_server):
    _post_rounds(benchmark, tocsin_server.base)


@pytest.mark.benchmark(group="POST /api/v1/logs, 1,000 records per request")
def test_ingest_logs_decode_only(benchmark):
    with BareServer() as base:
        _post_rounds(benchmark, base)


async def _until(socket, fingerprint: str) -> None:
    """Read until the alert event with `fingerprint` arrives."""
    while True:
        message = json.loads(await socket.recv())
        if message.get("topic") == "alerts" and message.get("data", {}).get("fingerprint") == fingerprint:
            return


async def _fan_out(server: LiveServer, rounds: int) -> list[float]:
    """Connect CLIENTS sockets subscribed to alerts; publish one alert per round; time until all have it."""
    sockets = [await connect(server.ws_base + "/api/v1/ws", max_queue=None) for _ in range(CLIENTS)]
    try:
        for socket in sockets:
            await socket.send(json.dumps({"subscribe": ["alerts"]}))
        await asyncio.sleep(0.5)  # every subscription is registered
        latencies = []
        for n in range(rounds):
            started = time.perf_counter()
            server.monitor.events.publish(Event(topic="alerts", type="firing", time_ns=time.time_ns(),
                                                data={"fingerprint": f"bench-{n}"}))

            await asyncio.gather(*(_until(socket, f"bench-{n}") for socket in sockets))
            latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


@pytest.mark.benchmark(group="WebSocket fan-out of one alert to 200 clients")
def test_ws_fan_out_to_200_clients(benchmark, tocsin_server):
    latencies = asyncio.run(_fan_out(tocsin_server, 50))
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    benchmark.extra_info.update(clients=CLIENTS, rounds=len(latencies),
                                median_ms=round(statistics.median(latencies) * 1e3, 2), p99_ms=round(p99 * 1e3, 2))
    benchmark.pedantic(lambda: None, rounds=1)  # the figures are in extra_info; pytest-benchmark wants a call
    print(f"\nfan-out to {CLIENTS} clients: median {statistics.median(latencies) * 1e3:.2f} ms, "
          f"p99 {p99 * 1e3:.2f} ms over {len(latencies)} alerts")
