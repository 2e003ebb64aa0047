"""The `[[channels]]` keys of an email channel, and the rules they must follow before anything is sent.

The rules that protect credentials live here, so a config that would send a password in clear text never
loads: AUTH needs `tls = "starttls"` or `"implicit"`, unless `allow_insecure_auth = true` says otherwise.
"""

from __future__ import annotations

import email.utils
from typing import Literal

import msgspec

from tocsin.ext import Duration, Port, Secret, compile_template

DEFAULT_PORTS = {"starttls": 587, "implicit": 465, "none": 25}


def mailbox(value: str, key: str) -> str:
    """The bare address of `Name <addr@host>` or `addr@host`; ValueError naming `key` when it is not one."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{key}: an address cannot contain a line break, got {value!r}")
    pairs = email.utils.getaddresses([value])
    if len(pairs) != 1 or "@" not in pairs[0][1] or pairs[0][1].startswith("@") or pairs[0][1].endswith("@"):
        raise ValueError(f"{key}: expected one address like 'ops@example.com' or 'Ops <ops@example.com>', "
                         f"got {value!r}")
    return pairs[0][1]


class EmailConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where and how to send: the SMTP server, its TLS mode and credentials, the addresses and the subject."""

    host: str
    port: Port | None = None
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    ca_file: str | None = None
    validate_certs: bool = True
    username: str | None = None
    password: Secret | None = None
    allow_insecure_auth: bool = False
    sender: str = msgspec.field(name="from")
    to: list[str]
    cc: list[str] = []
    subject: str | None = None
    html: bool = True
    timeout: Duration = Duration(30)
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError("host: expected the SMTP server's host name, got an empty string")
        if not self.to:
            raise ValueError("to: expected at least one recipient address")
        mailbox(self.sender, "from")
        for key in ("to", "cc"):
            for i, value in enumerate(getattr(self, key)):
                mailbox(value, f"{key}[{i}]")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password: set both for AUTH, or neither")
        if self.username is not None and self.tls == "none" and not self.allow_insecure_auth:
            raise ValueError('username: with tls = "none" the password would be sent in clear text; use '
                             'tls = "starttls" or "implicit", or set allow_insecure_auth = true to accept that')
        if self.tls == "none" and (self.ca_file is not None or not self.validate_certs):
            raise ValueError('ca_file and validate_certs: only apply with tls = "starttls" or "implicit"')
        if self.ca_file is not None and not self.validate_certs:
            raise ValueError("ca_file: certificates are not checked with validate_certs = false; set one of them")
        if self.timeout <= 0:
            raise ValueError(f"timeout: expected a positive duration, got {float(self.timeout)!r}")
        if self.subject is not None:
            compile_template(self.subject, what="subject")

    @property
    def smtp_port(self) -> int:
        """The port to connect to: the configured one, else 587, 465 or 25 by TLS mode."""
        return self.port or DEFAULT_PORTS[self.tls]

    @property
    def envelope_sender(self) -> str:
        """The bare address of `from`, for MAIL FROM."""
        return mailbox(self.sender, "from")

    @property
    def recipients(self) -> list[str]:
        """The bare addresses of `to` and `cc`, in order and without duplicates, for RCPT TO."""
        found = [mailbox(value, "to") for value in [*self.to, *self.cc]]
        return list(dict.fromkeys(found))
