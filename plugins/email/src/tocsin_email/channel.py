"""The `email` channel: each notification is one email, sent over SMTP with aiosmtplib.

TLS is `starttls` (the default: upgrade before anything else is said, and fail if the server cannot),
`implicit` (TLS from the first byte, port 465) or `none`. Credentials go only over TLS unless
`allow_insecure_auth = true` (checked when the config loads). The password is a `Secret`: it is revealed
only to aiosmtplib, and never put into an error or a log line.

Failures: 4xx replies, timeouts and dropped connections are retried; 5xx replies, a certificate that does not
verify, and a server lacking STARTTLS or AUTH are permanent. When a server takes the message for some
recipients and refuses others, the channel remembers who has it, so a retry goes only to the rest.
"""

from __future__ import annotations

import hashlib
import ssl
from collections import OrderedDict
from typing import Any

import aiosmtplib

from tocsin.ext import DeliveryRefused, Notification, NotificationChannel, Verdict
from tocsin_email.config import EmailConfig
from tocsin_email.message import Parts, build, render

REMEMBERED_MESSAGES = 1024


class EmailChannel(NotificationChannel):
    """Sends notifications as emails (plain text first, then HTML) through one SMTP server."""

    Config = EmailConfig
    timeout_s = 30.0
    config: EmailConfig

    def __init__(self, config: EmailConfig, *, name: str = "") -> None:
        super().__init__(config, name=name)
        self.timeout_s = float(config.timeout)
        self._tls: ssl.SSLContext | None = None
        self._delivered: OrderedDict[str, set[str]] = OrderedDict()  # message -> recipients who have it

    @property
    def server(self) -> str:
        """`host:port` of the SMTP server, for messages."""
        return f"{self.config.host}:{self.config.smtp_port}"

    def tls_context(self) -> ssl.SSLContext:
        """The client TLS context: system CAs, or `ca_file`'s, or no verification with `validate_certs = false`."""
        if self._tls is None:
            context = ssl.create_default_context(cafile=self.config.ca_file)
            if not self.config.validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls = context
        return self._tls

    def validate_config(self) -> list[str]:
        """Check that `ca_file` loads (the Struct already checked everything that needs no file)."""
        if self.config.tls == "none":
            return []
        try:
            self.tls_context()
        except OSError as error:
            return [f"ca_file: cannot load CA certificates from {self.config.ca_file!r}: {error}"]
        return []

    async def send(self, notification: Notification) -> None:
        """Send one email; refused recipients raise DeliveryRefused with the SMTP code."""
        parts = render(self.config, self.name, notification)
        key = _message_key(notification, parts)
        recipients = [rcpt for rcpt in self.config.recipients if rcpt not in self._delivered.get(key, ())]
        try:
            refused, _ = await aiosmtplib.send(build(self.config, parts, notification),
                                               sender=self.config.envelope_sender, recipients=recipients,
                                               **self._connection())
        except aiosmtplib.SMTPRecipientsRefused as error:
            self._settle(key, recipients, {item.recipient: (item.code, item.message) for item in error.recipients},
                         sent=False)
        else:
            self._settle(key, recipients, {rcpt: (reply.code, reply.message) for rcpt, reply in refused.items()},
                         sent=True)

    def _connection(self) -> dict[str, Any]:
        config = self.config
        options: dict[str, Any] = {
            "hostname": config.host,
            "port": config.smtp_port,
            "timeout": self.timeout_s,
            "local_hostname": config.local_hostname,
            "use_tls": config.tls == "implicit",
            "start_tls": config.tls == "starttls",
        }
        if config.tls != "none":
            options["tls_context"] = self.tls_context()
        if config.username is not None and config.password is not None:
            options["username"] = config.username
            options["password"] = config.password.reveal()
        return options

    def _settle(self, key: str, recipients: list[str], refused: dict[str, tuple[int, str]], *, sent: bool) -> None:
        """Remember who has the message; raise for refused recipients (retried if any refusal was temporary)."""
        temporary = [code for code, _ in refused.values() if not _permanent(code)]
        if not temporary:
            self._delivered.pop(key, None)  # done: nothing of this message will be retried
        elif sent:
            self._delivered.setdefault(key, set()).update(rcpt for rcpt in recipients if rcpt not in refused)
            self._delivered.move_to_end(key)
            while len(self._delivered) > REMEMBERED_MESSAGES:
                self._delivered.popitem(last=False)
        if not refused:
            return
        details = "; ".join(f"{rcpt}: {code} {text}".rstrip() for rcpt, (code, text) in refused.items())
        accepted = len(recipients) - len(refused) if sent else 0
        note = f" ({accepted} accepted it and will not get it again)" if accepted and temporary else ""
        raise DeliveryRefused(
            f"SMTP server {self.server} refused {len(refused)} of {len(recipients)} recipient(s): {details}{note}",
            status_code=temporary[0] if temporary else next(iter(refused.values()))[0],
            permanent=not temporary,
        )

    def classify_error(self, error: BaseException) -> Verdict:
        """SMTP's rules: 5xx permanent, 4xx and timeouts retried; a TLS or AUTH mismatch is permanent."""
        if isinstance(error, aiosmtplib.SMTPResponseException):
            return Verdict.permanent(error.code) if _permanent(error.code) else Verdict.retryable(error.code)
        if isinstance(error, ssl.SSLCertVerificationError) or isinstance(error.__cause__, ssl.SSLCertVerificationError):
            return Verdict.permanent()  # raw after STARTTLS, inside SMTPConnectError with implicit TLS
        if isinstance(error, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPConnectError
                      | aiosmtplib.SMTPServerDisconnected):
            return Verdict.retryable()
        if isinstance(error, aiosmtplib.SMTPException):
            return Verdict.permanent()  # the server offers no STARTTLS, or no AUTH
        return super().classify_error(error)

    def render_preview(self, notification: Notification) -> dict[str, Any]:
        """The email `send` would send: server, addresses, subject, and both parts."""
        parts = render(self.config, self.name, notification)
        return {"server": self.server, "tls": self.config.tls, "from": self.config.sender, "to": self.config.to,
                "cc": self.config.cc, "subject": parts.subject, "text": parts.text, "html": parts.html}

    def destination(self) -> str:
        """The SMTP server (what a rate limit would apply to)."""
        return f"smtp://{self.server}"


def _permanent(code: int) -> bool:
    return 500 <= code < 600


def _message_key(notification: Notification, parts: Parts) -> str:
    """One message, the same on every retry of it (the episode key alone is shared by firing and resolve)."""
    text = "\0".join((notification.idempotency_key, notification.kind, parts.subject, parts.text))
    return hashlib.sha256(text.encode()).hexdigest()
