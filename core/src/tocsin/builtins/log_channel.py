"""The built-in `log` channel: writes each notification to the `tocsin.notifications` logger."""

from __future__ import annotations

import logging
from typing import Literal

import msgspec

from tocsin.channels import NotificationChannel
from tocsin.hookspecs import hookimpl
from tocsin.models import Notification

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogChannel(NotificationChannel):
    """Writes notifications to a log instead of sending them anywhere; good for demos and fallbacks."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        logger: str = "tocsin.notifications"
        level: Literal["debug", "info", "warning", "error"] = "warning"

    async def send(self, notification: Notification) -> None:
        logging.getLogger(self.config.logger).log(
            LEVELS[self.config.level],
            "[%s] %s: %s",
            notification.severity,
            notification.title,
            notification.body,
            extra={"tocsin_channel": self.name, "tocsin_kind": notification.kind},
        )


@hookimpl
def register_notification_channels(register):
    register("log", LogChannel)
