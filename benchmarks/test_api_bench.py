"""tocsin-api over a real socket: `POST /logs` committed per second against a bare Litestar handler that only
decodes the same body, and the WebSocket fan-out of one alert to 200 connected clients.

Both `POST /logs` servers are uvicorn on loopback in this process's background threads; the client is httpx with
a kept-alive connection. One round posts one batch of 1,000 records, so records/s = 1,000 / the round's time;
the tocsin server commits each batch to a SQLite file before it answers.

The fan-out runs `tocsin serve` in its own process and gives three figures, since the end-to-end one is the
server's work and the clients' work on one shared machine:
- end to end: 200 `websockets` clients in this process, from the `POST /silences` until all decoded the event;
- the server's share: 200 raw sockets that only wait for their frame's bytes (epoll and recv, no decoding),
  from the `POST` until the last socket has its frame, with the HTTP answer's time beside it;
- the clients' share: the same 200 `websockets` clients against a trivial server (this file run as a script)
  that pushes the same message to all of them in one pass, from the push until all decoded it.

Run: uv run pytest benchmarks/test_api_bench.py --benchmark-only -s
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable

import httpx
import msgspec
import pytest
import tocsin_api
import tocsin_sqlite
import uvicorn
from litestar import Litestar, post
from tocsin_api.testing import LiveServer, free_port
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

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


SILENCE = {"matchers": 'bench="yes"', "duration": "1m", "created_by": "bench"}
"""The silence each round creates (with its own comment): its `silence_created` event is what fans out."""


async def _until(socket, comment: str) -> None:
    """Read until the `silence_created` event with `comment` arrives."""
    while True:
        message = json.loads(await socket.recv())
        if message.get("type") == "silence_created" and message.get("data", {}).get("comment") == comment:
            return


async def _clients(ws_url: str, rounds: int, fire: Callable[[str], Awaitable[None]]) -> list[float]:
    """CLIENTS `websockets` clients subscribed to alerts; each round calls `fire(comment)` and times it until
    every client has decoded the `silence_created` event with that comment."""
    sockets = [await connect(ws_url, max_queue=None) for _ in range(CLIENTS)]
    try:
        for socket_ in sockets:
            await socket_.send(json.dumps({"subscribe": ["alerts"]}))
            await socket_.recv()  # the subscription is acknowledged
        latencies = []
        for n in range(rounds):
            comment = f"fan-out {n}"
            started = time.perf_counter()
            await fire(comment)
            await asyncio.gather(*(_until(socket_, comment) for socket_ in sockets))
            latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        await asyncio.gather(*(socket_.close() for socket_ in sockets), return_exceptions=True)


async def _fan_out(base: str, ws_url: str, rounds: int) -> list[float]:
    """End to end: each round creates a silence over HTTP (an `alerts` event) and times it until every client
    has it: the request, the event, and the fan-out to all of them."""
    async with httpx.AsyncClient(base_url=base) as http:
        async def create(comment: str) -> None:
            response = await http.post("/api/v1/silences", json={**SILENCE, "comment": comment})
            assert response.status_code == 201, response.text

        return await _clients(ws_url, rounds, create)


def _raw_socket(ws_url: str) -> tuple[socket.socket, ClientProtocol]:
    """A WebSocket subscribed to alerts, opened as `websockets` clients open theirs (permessage-deflate offered,
    so the server compresses for it as for them), then left as a plain socket to read bytes from."""
    uri = parse_uri(ws_url)
    protocol = ClientProtocol(uri, extensions=[ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})])
    sock = socket.create_connection((uri.host, uri.port))
    protocol.send_request(protocol.connect())
    sock.sendall(b"".join(protocol.data_to_send()))
    while protocol.state is not State.OPEN:
        protocol.receive_data(sock.recv(65536))
    protocol.send_text(json.dumps({"subscribe": ["alerts"]}).encode())
    sock.sendall(b"".join(protocol.data_to_send()))
    while not [event for event in protocol.events_received() if isinstance(event, Frame)]:
        protocol.receive_data(sock.recv(65536))  # the subscription is acknowledged
    sock.setblocking(False)
    return sock, protocol


def _raw_round(http: httpx.Client, selector: selectors.BaseSelector, received: list[bytearray],
               comment: str) -> tuple[float, float]:
    """Create a silence from a thread while this one reads every socket: the times (s) until the HTTP answer
    and until the last socket had its frame's first bytes."""
    answered: list[float] = []
    started = time.perf_counter()

    def create() -> None:
        response = http.post("/api/v1/silences", json={**SILENCE, "comment": comment})
        assert response.status_code == 201, response.text
        answered.append(time.perf_counter() - started)

    poster = threading.Thread(target=create)
    poster.start()
    waiting = set(range(len(received)))
    last = 0.0
    while waiting:
        for key, _ in selector.select(10):
            received[key.data] += key.fileobj.recv(65536)
            if key.data in waiting:
                waiting.discard(key.data)
                last = time.perf_counter() - started
    poster.join(30)
    assert answered, "the POST failed (see the thread's exception above)"
    return answered[0], last


def _raw_fan_out(base: str, ws_url: str, rounds: int) -> tuple[list[float], list[float]]:
    """The server's share: CLIENTS raw sockets that only wait for their frame's bytes; per round, the times
    until the HTTP answer and until the last frame arrived. A first round is not counted: it was about twice as
    slow as the others in standalone runs (fresh sockets and compressors). Afterwards each socket's bytes are
    decoded to check that it got every round's event once and in order."""
    opened = [_raw_socket(ws_url) for _ in range(CLIENTS)]
    received = [bytearray() for _ in opened]
    answers, lasts = [], []
    try:
        with selectors.DefaultSelector() as selector, httpx.Client(base_url=base) as http:
            for index, (sock, _) in enumerate(opened):
                selector.register(sock, selectors.EVENT_READ, index)
            for n in range(-1, rounds):
                answered, last = _raw_round(http, selector, received, f"fan-out {n}")
                if n >= 0:
                    answers.append(answered)
                    lasts.append(last)
        for (_, protocol), data in zip(opened, received, strict=True):
            protocol.receive_data(bytes(data))
            comments = [json.loads(event.data)["data"]["comment"] for event in protocol.events_received()
                        if isinstance(event, Frame)]
            assert comments == [f"fan-out {n}" for n in range(-1, rounds)]
    finally:
        for sock, _ in opened:
            sock.close()
    return answers, lasts


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


class TrivialServer:
    """The peer of the clients' share: WebSocket connections that get an acknowledgement for their first
    message and then only what `FIRE <comment>` on a control connection pushes: one `silence_created` message,
    compressed per connection as uvicorn does, written to every socket in one pass (the answer is `OK <the
    pass's seconds>`)."""

    def __init__(self, message: bytes) -> None:
        self.message = message
        self.connections: list[tuple[ServerProtocol, asyncio.StreamWriter]] = []

    async def serve(self, port: int) -> None:
        server = await asyncio.start_server(self.accept, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if line.startswith(b"FIRE "):
            await self.control(line, reader, writer)
        else:
            await self.websocket(line, reader, writer)

    async def control(self, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line.startswith(b"FIRE "):
            comment = line[5:].strip().decode()
            text = self.message.replace(b"@comment@", comment.encode())
            started = time.perf_counter()
            for protocol, socket_writer in self.connections:
                protocol.send_text(text)
                socket_writer.write(b"".join(protocol.data_to_send()))
            writer.write(f"OK {time.perf_counter() - started}\n".encode())
            line = await reader.readline()
        writer.close()

    async def websocket(self, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = ServerProtocol(extensions=[ServerPerMessageDeflateFactory(
            server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5})])
        protocol.receive_data(line)
        acknowledged = False
        while data := await reader.read(65536):
            protocol.receive_data(data)
            for event in protocol.events_received():
                if isinstance(event, Request):
                    protocol.send_response(protocol.accept(event))
                elif isinstance(event, Frame) and not acknowledged:
                    protocol.send_text(b'{"type":"subscribed","data":{"topics":["alerts"]}}')
                    acknowledged = True
                    self.connections.append((protocol, writer))
            writer.write(b"".join(protocol.data_to_send()))
        writer.close()


def _message_template(base: str, ws_url: str) -> bytes:
    """A `silence_created` message as tocsin serve sends it, with `@comment@` where the comment goes."""
    async def capture() -> bytes:
        async with connect(ws_url) as socket_, httpx.AsyncClient(base_url=base) as http:
            await socket_.send(json.dumps({"subscribe": ["alerts"]}))
            await socket_.recv()
            await http.post("/api/v1/silences", json={**SILENCE, "comment": "@comment@"})
            while True:
                message = await socket_.recv()
                if '"silence_created"' in message:
                    return message.encode()

    return asyncio.run(capture())


async def _clients_alone(port: int, rounds: int) -> tuple[list[float], list[float]]:
    """The clients' share against the trivial server: per round, the time until every client decoded the
    pushed message, and the trivial server's own pass."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    passes: list[float] = []

    async def fire(comment: str) -> None:
        writer.write(f"FIRE {comment}\n".encode())
        passes.append(float((await reader.readline()).split()[1]))

    try:
        return await _clients(f"ws://127.0.0.1:{port}/", rounds, fire), passes
    finally:
        writer.close()


@pytest.fixture(scope="module")
def trivial_server(server_process):
    """This file run as the trivial server, in its own process like tocsin serve, pushing tocsin's message."""
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, str(port)], stdin=subprocess.PIPE)
    process.stdin.write(_message_template(*server_process))
    process.stdin.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the trivial server did not start") from None
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(15)


def _figures(latencies: list[float]) -> dict[str, float]:
    """The median and p99 (ms) of some latencies in seconds."""
    ordered = sorted(latencies)
    return {"median_ms": round(statistics.median(ordered) * 1e3, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1e3, 2)}


def _ms(latencies: list[float]) -> str:
    """'median X ms, p99 Y ms' of some latencies in seconds."""
    figures = _figures(latencies)
    return f"median {figures['median_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms"


FAN_OUT_ROUNDS = 50


@pytest.mark.benchmark(group="WebSocket fan-out of one alert event to 200 clients")
def test_ws_fan_out_to_200_clients(benchmark, server_process, trivial_server):
    end_to_end = asyncio.run(_fan_out(*server_process, FAN_OUT_ROUNDS))
    answers, server = _raw_fan_out(*server_process, FAN_OUT_ROUNDS)
    clients, passes = asyncio.run(_clients_alone(trivial_server, FAN_OUT_ROUNDS))
    benchmark.extra_info.update(clients=CLIENTS, rounds=FAN_OUT_ROUNDS, end_to_end=_figures(end_to_end),
                                server_share=_figures(server), http_answer=_figures(answers),
                                clients_share=_figures(clients), trivial_pass=_figures(passes),
                                load_average=list(os.getloadavg()))
    benchmark.pedantic(lambda: None, rounds=1)  # the figures are in extra_info; pytest-benchmark wants a call
    print(f"\nfan-out to {CLIENTS} clients over {FAN_OUT_ROUNDS} events, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}:\n"
          f"  end to end (websockets clients, HTTP request included): {_ms(end_to_end)}\n"
          f"  server's share (raw sockets, POST to the last frame's bytes): {_ms(server)}; "
          f"the HTTP answer came at {_ms(answers)}\n"
          f"  clients' share (websockets clients, a trivial server's push to the last decode): {_ms(clients)}; "
          f"the trivial server's pass took {_ms(passes)}")


if __name__ == "__main__":  # the trivial server of the clients' share: port argument, message template on stdin
    asyncio.run(TrivialServer(sys.stdin.buffer.read()).serve(int(sys.argv[1])))
