"""Fixtures for tocsin-otlp's tests: a live `tocsin serve` app on loopback, SQLite storage, API keys on."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import tocsin_api
import tocsin_otlp
import tocsin_sqlite
from tocsin_api.testing import LiveServer

from tocsin.testing import make_monitor

WRITE_KEY = "otlp-writer-key-0123456789abcdef"
READ_KEY = "otlp-reader-key-0123456789abcdef"


@pytest.fixture
def otlp_server(tmp_path) -> Iterator[LiveServer]:
    """tocsin-api with tocsin-otlp on a SQLite file; a `write` key for exporters and a `read` key for queries."""
    config = {
        "storage": {"backend": "sqlite", "path": str(tmp_path / "otlp.db")},
        "server": {"rate_limit": 0, "api_keys": [
            {"name": "exporter", "key": WRITE_KEY, "scopes": ["write"]},
            {"name": "reader", "key": READ_KEY, "scopes": ["read"]},
        ]},
        "plugins": {"otlp": {"max_body_bytes": 4 * 1024 * 1024}},
    }
    server = LiveServer(make_monitor(tocsin_api, tocsin_sqlite, tocsin_otlp, config=config)).start()
    yield server
    server.stop()


@pytest.fixture
def reader(otlp_server) -> Iterator[httpx.Client]:
    """An httpx client reading `/api/v1` with the read key."""
    with httpx.Client(base_url=otlp_server.base, timeout=10,
                      headers={"Authorization": f"Bearer {READ_KEY}"}) as http:
        yield http


@pytest.fixture
def writer(otlp_server) -> Iterator[httpx.Client]:
    """An httpx client posting to `/v1/*` with the write key."""
    with httpx.Client(base_url=otlp_server.base, timeout=30,
                      headers={"Authorization": f"Bearer {WRITE_KEY}"}) as http:
        yield http
