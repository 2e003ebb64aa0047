"""`tocsin storage copy --from CONFIG --to CONFIG`: move everything a store holds into another backend.

Both configs name SQL backends (`sqlite`, `postgres`); the target must be empty (a new file or schema).
Tables are copied in order, 5,000 rows per transaction (`tocsin_sql.transfer`): metric rollups with their
sketches, tiers, spans, logs (with the target's full-text index built as they arrive), alerts with their
history, silences, the outbox and its attempts, health results, workflows and notification group state.
Stop the applications writing to the source first, or what they write during the copy may be missed.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import click

from tocsin import Monitor
from tocsin.ext import StorageError


def _backend(config_path: str, role: str) -> Any:
    """The (unopened) storage backend a config names; a ClickException when it cannot take part in a copy."""
    monitor = Monitor.from_config(config_path)
    name = monitor.config.storage.backend
    cls = monitor.registries.storage.get(name)
    options = monitor.config.storage.options
    options = options if options is not None else cls.Config()
    path = getattr(options, "path", None)
    if role == "source" and isinstance(path, str) and not os.path.exists(path):
        raise click.ClickException(f"the source store {os.path.abspath(path)} does not exist")
    from tocsin_sql.transfer import SqlTransfer  # SQLAlchemy: only when the command runs, not at every CLI start

    backend = cls(options)
    if not isinstance(backend, SqlTransfer):
        raise click.ClickException(f"the {role} storage is {name!r}: storage copy works between SQL backends "
                                   "(sqlite, postgres)")
    return backend


async def copy_store(source: Any, target: Any, say: Any = print) -> dict[str, int]:
    """Copy every table of `source` into the empty `target` (both open); rows copied per table."""
    from tocsin_sql.transfer import TABLES

    stats = await target.stats()
    if any(stats.rows.values()):
        held = ", ".join(f"{table} {rows:,}" for table, rows in stats.rows.items() if rows)
        raise StorageError(f"the target store is not empty ({held}); copy into a new file or schema")
    copied = {}
    for table in TABLES:
        count, after = 0, None
        while True:
            rows, after = await source.export_chunk(table, after)
            if not rows:
                break
            await target.import_chunk(table, rows)
            count += len(rows)
        copied[table] = count
        say(f"{table}: {count:,} rows")
    return copied


async def _copy(source_path: str, target_path: str) -> None:
    source, target = _backend(source_path, "source"), _backend(target_path, "target")
    await source.open()
    try:
        await target.open()
        try:
            copied = await copy_store(source, target, click.echo)
        finally:
            await target.close()
    finally:
        await source.close()
    click.echo(f"copied {sum(copied.values()):,} rows in {len(copied)} tables")


@click.group("storage")
def storage() -> None:
    """Work on a config's storage as a whole."""


@storage.command("copy")
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The config whose storage to read.")
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The config whose (empty) storage to fill.")
def copy(source: str, target: str) -> None:
    """Copy everything the storage of one config holds into the (empty) storage of another."""
    try:
        asyncio.run(_copy(source, target))
    except StorageError as error:
        raise click.ClickException(str(error)) from None
