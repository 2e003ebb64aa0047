"""A real HTTP receiver on loopback for channel tests: answers from a script and records every request.

    async with HttpReceiver([500, 500, Reply(429, {"Retry-After": "7"}), 200]) as receiver:
        ...  # point a channel at receiver.url, allow 127.0.0.1 in [notifications.egress]
        assert [r.headers["idempotency-key"] for r in receiver.requests] == [...]

Each request takes the next reply of the script (then `default`); a subclass can override `reply(request)`
to answer by content (a fake Slack or PagerDuty that enforces its API). `Reply(hang=True)` accepts the request
and answers nothing until `release()` is called or the client goes away, like a receiver that hangs.
Requests are stamped with the given clock (a VirtualClock in tests), so spacing can be checked without
wall-clock time. HTTP/1.1 with `Connection: close`, bodies by Content-Length: enough for webhooks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tocsin.clock import Clock, SystemClock


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, headers and body, or `hang` to answer nothing."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False


@dataclass
class ReceivedRequest:
    """A request the receiver got: method, path, lowercase headers, body, and the clock's time on arrival."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time_ns: int

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class HttpReceiver:
    """A loopback HTTP server (127.0.0.1, a free port) that replies from a script and records requests."""

    def __init__(self, script: Sequence[Reply | int] = (), *, default: Reply | int = 200,
                 clock: Clock | None = None) -> None:
        self.script = [Reply(item) if isinstance(item, int) else item for item in script]
        self.default = Reply(default) if isinstance(default, int) else default
        self.clock = clock or SystemClock()
        self.requests: list[ReceivedRequest] = []
        self.open_connections = 0
        self._released = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The receiver's base URL, `http://127.0.0.1:<port>/`."""
        assert self._port is not None, "start the receiver first"
        return f"http://127.0.0.1:{self._port}/"

    async def start(self) -> HttpReceiver:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Release hung replies and stop listening."""
        self.release()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> HttpReceiver:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def release(self) -> None:
        """Let every hung reply (and every later one) answer with the default reply."""
        self._released.set()

    async def wait_for(self, count: int, within_s: float = 10.0) -> list[ReceivedRequest]:
        """Wait until at least `count` requests arrived (a safety limit in real seconds, not an assertion)."""
        async with asyncio.timeout(within_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            request = await self._read(reader)
            if request is None:
                return
            reply = self.reply(request)
            async with self._arrived:
                self.requests.append(request)
                self._arrived.notify_all()
            if reply.hang:
                await self._hang(reader)
                reply = self.default
            head = f"HTTP/1.1 {reply.status} Scripted\r\nContent-Length: {len(reply.body)}\r\nConnection: close\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
            writer.write(head.encode() + b"\r\n" + reply.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()

    def reply(self, request: ReceivedRequest) -> Reply:
        """The answer to `request`: the script's next reply, then `default` (subclasses may answer by content)."""
        return self.script.pop(0) if self.script else self.default

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Wait for `release()`, or for the client to close the connection (reading gives EOF)."""
        released = asyncio.ensure_future(self._released.wait())
        closed = asyncio.ensure_future(reader.read(1))
        await asyncio.wait({released, closed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (released, closed):
            task.cancel()
        if not self._released.is_set():
            raise ConnectionError("the client went away")

    async def _read(self, reader: asyncio.StreamReader) -> ReceivedRequest | None:
        line = await reader.readline()
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return ReceivedRequest(method, path, headers, body, self.clock.now_ns())
