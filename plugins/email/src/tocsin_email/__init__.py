"""tocsin-email: the `email` notification channel (SMTP via aiosmtplib, plain text and HTML).

Installed, it registers the channel type "email" through the `tocsin` entry point; configure it with
`[[channels]] type = "email"` (keys in README.md and docs/channels.md).
"""

from __future__ import annotations

from tocsin import hookimpl
from tocsin_email.channel import EmailChannel
from tocsin_email.config import EmailConfig

__all__ = ["EmailChannel", "EmailConfig"]


@hookimpl
def register_notification_channels(register):
    """The `email` channel type."""
    register("email", EmailChannel)
