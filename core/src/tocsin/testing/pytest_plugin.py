"""tocsin's pytest fixtures, loaded through the `pytest11` entry point.

Imports are lazy: a module-level import of tocsin here would run before coverage starts and slow every
pytest run of a project that merely has tocsin installed. Nothing is autouse, and every fixture's name starts
with `tocsin_`, so none can clash with a project's own `monitor` fixture.
"""

from __future__ import annotations

import pytest


@pytest.fixture
async def tocsin_monitor():
    """A started Monitor on in-memory storage (entry points off), closed after the test."""
    from tocsin.testing import make_monitor

    instance = make_monitor()
    async with instance:
        yield instance


@pytest.fixture
def tocsin_monitor_factory():
    """Build Monitors with extra plugins and config: `tocsin_monitor_factory(MyPlugin(), config={...})`."""
    from tocsin.testing import make_monitor

    return make_monitor


@pytest.fixture
def tocsin_captured():
    """A fresh CapturingChannel."""
    from tocsin.testing import CapturingChannel

    return CapturingChannel()
