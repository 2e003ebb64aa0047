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
import subprocess
import sys
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

from tocsin.models import LogRecord
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


async def _until(socket, comment: str) -> None:
    """Read until the `silence_created` event with `comment` arrives."""
    while True:
        message = json.loads(await socket.recv())
        if message.get("type") == "silence_created" and message.get("data", {}).get("comment") == comment:
            return


async def _fan_out(base: str, ws_url: str, rounds: int) -> list[float]:
    """CLIENTS sockets subscribed to alerts; each round creates a silence over HTTP (an `alerts` event) and
    times it until every client has it: the request, the event, and the fan-out to all of them."""
    sockets = [await connect(ws_url, max_queue=None) for _ in range(CLIENTS)]
    try:
        for socket in sockets:
            await socket.send(json.dumps({"subscribe": ["alerts"]}))
            await socket.recv()  # the subscription is acknowledged
        latencies = []
        async with httpx.AsyncClient(base_url=base) as http:
            for n in range(rounds):
                comment = f"fan-out {n}"
                started = time.perf_counter()
                response = await http.post("/api/v1/silences", json={
                    "matchers": 'bench="yes"', "duration": "1m", "comment": comment, "created_by": "bench"})
                assert response.status_code == 201, response.text
                await asyncio.gather(*(_until(socket, comment) for socket in sockets))
                latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


@pytest.fixture(scope="module")
def server_process(tmp_path_factory):
    """`tocsin serve` in its own process, so the 200 clients here do not share its interpreter."""
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    config = folder / "tocsin.toml"
    config.write_text(f'[storage]\nbackend = "sqlite"\npath = "{folder / "bench.db"}"\n\n'
                      f'[server]\nport = {port}\nrate_limit = 0\nws_queue = 10000\n')
    process = subprocess.Popen([sys.executable, "-m", "tocsin", "serve", "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"tocsin serve did not start: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)
    yield base, f"ws://127.0.0.1:{port}/api/v1/ws"
    process.terminate()
    process.wait(15)


@pytest.mark.benchmark(group="WebSocket fan-out of one alert event to 200 clients")
def test_ws_fan_out_to_200_clients(benchmark, server_process):
    latencies = asyncio.run(_fan_out(*server_process, 50))
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    benchmark.extra_info.update(clients=CLIENTS, rounds=len(latencies),
                                median_ms=round(statistics.median(latencies) * 1e3, 2), p99_ms=round(p99 * 1e3, 2))
    benchmark.pedantic(lambda: None, rounds=1)  # the figures are in extra_info; pytest-benchmark wants a call
    print(f"\nfan-out to {CLIENTS} clients: median {statistics.median(latencies) * 1e3:.2f} ms, "
          f"p99 {p99 * 1e3:.2f} ms over {len(latencies)} events (HTTP request included)")
