"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the email tests: scripted answers, then acceptance.

The handler keeps every accepted message parsed, with whether it arrived over TLS and after AUTH, and
every AUTH attempt with whether the connection was encrypted at the time. RCPT and DATA answer from
scripts (`rcpt_replies[address]`, `data_replies`) before `data_reply`; `auth_reply`, when set, refuses
every AUTH with that reply.
"""

from __future__ import annotations

import email
import email.message
import socket
import ssl
from dataclasses import dataclass, field

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

USER, PASSWORD = "alice", "correct horse battery staple"
ACCEPTED = "250 Message accepted for delivery"


@dataclass
class Received:
    """One message the server accepted: envelope, parsed message, and how the session was secured."""

    mail_from: str
    rcpt_tos: list[str]
    message: email.message.Message
    tls: bool
    authenticated: bool


def encrypted(server, session) -> bool:
    """Whether the session runs over TLS: upgraded by STARTTLS, or TLS from the first byte."""
    return session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None


@dataclass
class Recorder:
    """The aiosmtpd handler and authenticator."""

    received: list[Received] = field(default_factory=list)
    logins: list[tuple[bytes, bytes, bool]] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    data_reply: str = ACCEPTED
    auth_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        script = self.rcpt_replies.get(address)
        if script:
            return script.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.data_replies.pop(0) if self.data_replies else self.data_reply
        if reply.startswith("250"):
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          email.message_from_bytes(envelope.original_content),
                                          tls=encrypted(server, session), authenticated=bool(session.authenticated)))
        return reply

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.logins.append((auth_data.login, auth_data.password, encrypted(server, session)))
        ok = self.auth_reply is None and (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
        # handled=False: aiosmtpd answers (535 unless auth_reply says otherwise); True would leave it to us
        return AuthResult(success=ok, handled=False, message=None if ok else self.auth_reply)


@dataclass
class SmtpServer:
    """A started server: where it listens and what it recorded; `stop()` when done."""

    port: int
    recorder: Recorder
    controller: Controller

    @property
    def received(self) -> list[Received]:
        return self.recorder.received

    def stop(self) -> None:
        self.controller.stop()


def alternatives(message: email.message.Message) -> tuple[str, str]:
    """The text of a multipart/alternative message's text/plain and text/html parts, checking their order."""
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_payload()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    return decoded(plain), decoded(html)


def decoded(part: email.message.Message) -> str:
    """A part's text as sent, with SMTP's CRLF line ends back to LF."""
    return part.get_payload(decode=True).decode().replace("\r\n", "\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(ssl_context: ssl.SSLContext | None = None, **smtp_parameters) -> SmtpServer:
    """Start a server on 127.0.0.1 (`ssl_context` for implicit TLS; other keys go to aiosmtpd's SMTP class)."""
    recorder = Recorder()
    if smtp_parameters.get("auth_required") or "auth_require_tls" in smtp_parameters:
        smtp_parameters.setdefault("authenticator", recorder.authenticate)
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, ssl_context=ssl_context,
                            server_hostname="smtp.tocsin.test", **smtp_parameters)
    controller.start()
    return SmtpServer(port, recorder, controller)


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """The server side of TLS: a certificate for 127.0.0.1 signed by `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context
