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
    """Import the Monitor (and the rule test runner) lazily, so plugins importing `tocsin.hookimpl` stay cheap
    and cycle-free."""
    if name == "Monitor":
        from tocsin.monitor import Monitor

        return Monitor
    if name in ("run_rule_tests", "RuleTestOutcome"):
        from tocsin.testing.ruletests import TestOutcome, arun_text

        return arun_text if name == "run_rule_tests" else TestOutcome
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
    "RuleTestOutcome",
    "SchemaVersionError",
    "StorageError",
    "TocsinError",
    "UnknownName",
    "__version__",
    "hookimpl",
    "run_rule_tests",
]
