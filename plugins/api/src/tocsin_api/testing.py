"""For tests of tocsin-api and of plugins that add routes: a real uvicorn server on a loopback port, serving
`create_app(monitor)` with the monitor inside.

The server runs on its own thread and loop; `server.call(coro)` runs a coroutine there (to record or read
through the monitor the way the app would), and `server.url(path)` builds request URLs.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

from tocsin import Monitor
from tocsin_api.app import create_app

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """uvicorn serving `create_app(monitor)` on 127.0.0.1 until `stop()`."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.port = free_port()
        config = uvicorn.Config(create_app(monitor), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", ws_ping_interval=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="tocsin-api-test", daemon=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)

    def url(self, path: str) -> str:
        return self.base + path

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop (where the monitor lives) and return its result."""
        loop = self.monitor.loop
        assert loop is not None, "the monitor is not started"
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)
