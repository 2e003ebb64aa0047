"""Helpers shared by the SQLite backend's tests: a loop runner, configs on temporary files, records."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from tocsin_sqlite import SQLiteStorage

from tocsin.models import LogRecord

T = TypeVar("T")
T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
MS = 1_000_000


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a fresh loop (the storage's threads serve any loop)."""
    return asyncio.run(coroutine)


def config(path: Path, **options: Any) -> SQLiteStorage.Config:
    """A Config for a file in a test's temporary directory."""
    return SQLiteStorage.Config(path=str(path), **options)


def log(message: str, at_ms: float, **fields: Any) -> LogRecord:
    """A log record `at_ms` milliseconds after T0."""
    fields.setdefault("level", "info")
    return LogRecord(time_ns=T0 + round(at_ms * MS), message=message, **fields)
