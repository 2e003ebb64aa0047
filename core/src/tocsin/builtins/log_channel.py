"""The built-in `log` channel: writes each notification to tocsin's own log (`monitor.log`).

Without a running monitor (a channel built by hand, `tocsin notify test`) it writes to the stdlib logger
named by `logger` instead.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import msgspec

from tocsin.hookspecs import hookimpl
from tocsin.models import Notification
from tocsin.notify.channel import NotificationChannel

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogChannel(NotificationChannel):
    """Writes notifications to a log instead of sending them anywhere; good for demos and fallbacks."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        """The logger name records go under, and their level."""

        logger: str = "tocsin.notifications"
        level: Literal["debug", "info", "warning", "error"] = "warning"

    def _message(self, notification: Notification) -> str:
        return f"{notification.title}\n{notification.body}".rstrip()

    def _fields(self, notification: Notification) -> dict[str, Any]:
        fields: dict[str, Any] = {"channel": self.name, "kind": notification.kind,
                                  "idempotency_key": notification.idempotency_key}
        if notification.alert is not None:
            fields.update(rule=notification.alert.rule, fingerprint=notification.alert.fingerprint)
        return fields

    async def send(self, notification: Notification) -> None:
        """Write one record at the configured level."""
        message, fields = self._message(notification), self._fields(notification)
        if self.monitor is not None and self.monitor.started:
            getattr(self.monitor.log.child(self.config.logger), self.config.level)(message, **fields)
            return
        logging.getLogger(self.config.logger).log(
            LEVELS[self.config.level], "%s", message, extra={f"tocsin_{key}": value for key, value in fields.items()}
        )

    def render_preview(self, notification: Notification) -> dict[str, Any]:
        """The record the channel would write."""
        return {"logger": self.config.logger, "level": self.config.level, "message": self._message(notification),
                "fields": self._fields(notification)}


@hookimpl
def register_notification_channels(register):
    """The `log` channel type."""
    register("log", LogChannel)
