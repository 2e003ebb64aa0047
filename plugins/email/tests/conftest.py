"""Fixtures for the email tests: aiosmtpd servers on 127.0.0.1 and a test CA (trustme) for TLS.

This directory goes on sys.path for `email_test_server`, where the server itself lives.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).parent))

from email_test_server import SmtpServer, serve, server_context


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority; the server's certificate is for 127.0.0.1."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca, tmp_path) -> Path:
    """The test CA's certificate as a PEM file, for the channel's `ca_file`."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server_tls(ca) -> ssl.SSLContext:
    """The server side of TLS, with a certificate from the test CA."""
    return server_context(ca)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Start SMTP servers on 127.0.0.1 (see `email_test_server.serve`); each is stopped after the test."""
    servers: list[SmtpServer] = []

    def start(ssl_context: ssl.SSLContext | None = None, **smtp_parameters) -> SmtpServer:
        servers.append(serve(ssl_context, **smtp_parameters))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
