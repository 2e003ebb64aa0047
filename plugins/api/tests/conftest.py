"""Fixtures for tocsin-api's tests: a live server on loopback with a monitor on memory or SQLite storage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import tocsin_api
import tocsin_sqlite
from tocsin_api.testing import LiveServer

from tocsin.testing import make_monitor


@pytest.fixture
def serve(tmp_path) -> Iterator[Callable[..., LiveServer]]:
    """`serve(config={...}, sqlite=True)` starts a live server; all are stopped after the test."""
    servers: list[LiveServer] = []

    def start(config: dict[str, Any] | None = None, *, sqlite: bool = True, plugins: tuple[object, ...] = ()
              ) -> LiveServer:
        data = dict(config or {})
        if sqlite:
            data.setdefault("storage", {"backend": "sqlite", "path": str(tmp_path / f"api{len(servers)}.db")})
        monitor = make_monitor(tocsin_api, tocsin_sqlite, *plugins, config=data)
        server = LiveServer(monitor).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(serve) -> LiveServer:
    """A live server on a SQLite file with default config (no API keys)."""
    return serve()


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    """An httpx client for `server`."""
    with httpx.Client(base_url=server.base, timeout=10) as http:
        yield http
