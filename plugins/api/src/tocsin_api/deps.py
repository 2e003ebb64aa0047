"""What handlers receive by dependency injection (`monitor: MonitorDep` is the running Monitor), and its storage."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency
from litestar.exceptions import HTTPException

from tocsin import Monitor
from tocsin.ext import StorageBackend

MonitorDep: TypeAlias = NamedDependency[Monitor]


def storage_of(monitor: Monitor) -> StorageBackend:
    """The monitor's open storage; 503 while it is not running (starting up or shutting down)."""
    storage = monitor.storage
    if storage is None:
        raise HTTPException(status_code=503, detail="the monitor is not running")
    return storage
