"""What handlers receive by dependency injection: `monitor: MonitorDep` is the running Monitor."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from tocsin import Monitor

MonitorDep: TypeAlias = NamedDependency[Monitor]
