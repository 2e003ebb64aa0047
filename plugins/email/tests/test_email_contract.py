"""The email channel against the channel contract: a real SMTP server with STARTTLS (a test CA) and AUTH."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import tocsin_email
import trustme
from email_test_server import PASSWORD, USER, alternatives, serve, server_context

from tocsin.testing.channel_contract import ChannelContract, Destination

SUBJECTS = {"firing": "[FIRING] disk-full (critical)", "resolved": "[RESOLVED] disk-full",
            "test": "[TEST] tocsin test notification"}


@contextlib.contextmanager
def quiet(logger: str):
    """Silence a logger for a while: aiosmtpd logs every reply, so its echo of the password would be in caplog."""
    log = logging.getLogger(logger)
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = False


class TestEmailContract(ChannelContract):
    plugin = tocsin_email
    channel_type = "email"

    @contextlib.asynccontextmanager
    async def destination(self, clock, failure=None):
        ca = trustme.CA()
        with tempfile.TemporaryDirectory() as tmp, quiet("mail.log"):
            ca_file = Path(tmp) / "ca.pem"
            ca.cert_pem.write_to_path(str(ca_file))
            server = serve(tls_context=server_context(ca), require_starttls=True, auth_required=True)
            if failure == "retryable":
                server.recorder.data_reply = "451 4.3.0 Try again later"
            elif failure == "permanent":  # a careless server that echoes the credentials it refuses
                server.recorder.auth_reply = f"535 5.7.8 No user {USER} with password {PASSWORD}"
            options = {"host": "127.0.0.1", "port": server.port, "tls": "starttls", "ca_file": str(ca_file),
                       "username": USER, "password": PASSWORD, "from": "tocsin <alerts@example.com>",
                       "to": ["ops@example.com"], "local_hostname": "tocsin.test"}
            try:
                yield Destination(options=options, messages=lambda: [got.message for got in server.received])
            finally:
                server.stop()

    def assert_delivered(self, messages, kind, alert):
        (message,) = messages
        assert message["Subject"] == SUBJECTS[kind]
        text, html = alternatives(message)
        assert text.startswith(SUBJECTS[kind] + "\n\n")
        if alert is not None:
            assert "Disk 93% full on db-1 <&>" in text and "Disk 93% full on db-1 &lt;&amp;&gt;" in html
            assert "host=db-1" in html and 'href="https://runbooks.example.com/disk"' in html
