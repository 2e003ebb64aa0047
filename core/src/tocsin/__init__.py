"""tocsin: embedded-first monitoring for Python — metrics, traces, logs, alerts and notifications."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from tocsin.channels import NotificationChannel
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

try:
    __version__ = version("tocsin")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"

__all__ = [
    "ConfigError",
    "DeliveryError",
    "DuplicateRegistration",
    "InstrumentError",
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
