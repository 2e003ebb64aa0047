"""tocsin: embedded-first monitoring for Python — metrics, traces, logs, alerts and notifications."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from tocsin.errors import (
    ConfigError,
    DeliveryError,
    DuplicateRegistration,
    InstrumentError,
    PluginError,
    PluginLoadError,
    QueryError,
    SchemaVersionError,
    StorageError,
    TocsinError,
    UnknownName,
)
from tocsin.hookspecs import hookimpl
from tocsin.models import Notification
from tocsin.notify.channel import NotificationChannel

try:
    __version__ = version("tocsin")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"


def __getattr__(name: str):
    """Import the Monitor lazily, so plugins importing `tocsin.hookimpl` stay cheap and cycle-free."""
    if name == "Monitor":
        from tocsin.monitor import Monitor

        return Monitor
    raise AttributeError(f"module 'tocsin' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "DeliveryError",
    "DuplicateRegistration",
    "InstrumentError",
    "Monitor",
    "Notification",
    "NotificationChannel",
    "PluginError",
    "PluginLoadError",
    "QueryError",
    "SchemaVersionError",
    "StorageError",
    "TocsinError",
    "UnknownName",
    "__version__",
    "hookimpl",
]
