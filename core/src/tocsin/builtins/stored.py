"""The store a read-only command looks at: the config's backend, built and never created.

`tocsin alerts`, `notify deliveries` and `logs search` read what an application recorded. They refuse what
would only show an empty store — memory storage (each process has its own) or a database file that is not
there — with a StorageError (exit 1), so a command run in the wrong directory says so instead of reporting
nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import click

from tocsin.errors import StorageError

CONFIG_OPTION = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                             help="The config whose storage to use (default: TOCSIN_CONFIG, else defaults).")


def existing_store(config_path: str | None) -> Any:
    """A monitor built from the config with its storage built, not opened; refuses what would create a store."""
    from tocsin.monitor import Monitor

    monitor = Monitor.from_config(config_path)
    name = monitor.config.storage.backend
    if name == "memory":
        raise StorageError("the configured storage is 'memory', which is per-process: this command cannot see "
                           "what another process recorded; pass --config FILE (or set TOCSIN_CONFIG) naming the "
                           "application's config")
    backend = monitor.registries.storage.get(name)
    options = monitor.config.storage.options
    options = options if options is not None else backend.Config()
    path = getattr(options, "path", None)
    if isinstance(path, str) and path not in ("", ":memory:") and not path.startswith("file:") \
            and not os.path.exists(path):
        raise StorageError(f"no database at {os.path.abspath(path)}: nothing has been recorded there yet; "
                           "pass --config FILE (or set TOCSIN_CONFIG) naming the application's config")
    monitor.storage = backend(options)
    return monitor


@contextlib.asynccontextmanager
async def opened_store(config_path: str | None) -> AsyncIterator[Any]:
    """A monitor built from the config with only its storage opened (no flusher, no evaluator), never created."""
    monitor = existing_store(config_path)
    await monitor.storage.open()
    try:
        yield monitor
    finally:
        await monitor.storage.close()
