"""The interface every notification channel implements."""

from __future__ import annotations

import abc
from typing import ClassVar

import msgspec

from tocsin.models import Notification


class NotificationChannel(abc.ABC):
    """Delivers notifications to one destination; built as `Channel(config, name=...)`.

    Subclasses set a nested `Config` Struct (its fields are the channel's keys in `[[channels]]`) and
    implement `send`, raising `DeliveryError` when the destination refuses.
    """

    Config: ClassVar[type[msgspec.Struct]]

    def __init__(self, config: msgspec.Struct, *, name: str = "") -> None:
        self.config = config
        self.name = name or type(self).__name__

    @abc.abstractmethod
    async def send(self, notification: Notification) -> None:
        """Deliver one notification, or raise DeliveryError."""
