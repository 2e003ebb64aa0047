"""Built-in `tocsin notify ...` commands: send a test message to a configured channel, read the delivery log.

`notify deliveries` opens the storage of a config (`--config`, else `TOCSIN_CONFIG`) like `tocsin alerts list`:
no services start, nothing is created, and memory storage (per-process) is an error.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import msgspec

from tocsin.builtins.stored import CONFIG_OPTION, opened_store
from tocsin.hookspecs import hookimpl
from tocsin.models import Delivery, DeliveryAttempt
from tocsin.storage.protocol import MAX_QUERY_LIMIT, DeliveryQuery

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@click.group("notify")
def notify() -> None:
    """Notification channels: send a test message, list deliveries."""


@notify.command("test")
@click.argument("channel")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The config file (default: $TOCSIN_CONFIG).")
@click.pass_context
def notify_test(ctx: click.Context, channel: str, config_path: str | None) -> None:
    """Send a test notification to CHANNEL now, through its egress guard and timeout; exit 1 if it fails."""
    from tocsin.assembly import load_config
    from tocsin.monitor import Monitor
    from tocsin.notify.service import NotifyService
    from tocsin.plugins import build_registries, make_plugin_manager

    root = ctx.find_root()
    pm = root.obj if root.obj is not None else make_plugin_manager()
    registries = build_registries(pm)
    monitor = Monitor(load_config(config_path, registries=registries), pm=pm, registries=registries)
    service = NotifyService(monitor)

    async def send():
        try:
            return await service.test(channel)
        finally:
            await service.stop()

    result = asyncio.run(send())
    if result.ok:
        click.echo(f"{channel}: test notification sent ({result.latency_s * 1000:.0f} ms)")
        return
    status = f" (status {result.status_code})" if result.status_code is not None else ""
    click.echo(f"{channel}: test notification failed, {result.outcome}{status}: {result.error}", err=True)
    ctx.exit(1)


def _attempt_text(attempt: DeliveryAttempt) -> str:
    status = f" (status {attempt.status_code})" if attempt.status_code is not None else ""
    return f"{attempt.outcome}{status}" + (f": {attempt.error}" if attempt.error else "")


def _line(delivery: Delivery, last: DeliveryAttempt | None) -> str:
    """One delivery on one line: created time, state, channel, kind, fingerprint, attempts, the last error."""
    moment = (EPOCH + timedelta(microseconds=delivery.created_ns // 1000)).replace(tzinfo=None)
    tries = f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
    line = (f"{moment.isoformat(timespec='seconds')}Z  {delivery.state:<7}  {delivery.channel}  {delivery.kind}  "
            f"{delivery.fingerprint}  {tries}")
    return line + (f"  last: {_attempt_text(last)}" if last is not None else "")


@notify.command("deliveries")
@CONFIG_OPTION
@click.option("--failed", is_flag=True, help="Only deliveries that failed for good, with the last error.")
@click.option("--channel", metavar="NAME", default=None, help="Only this channel's deliveries.")
@click.option("--limit", metavar="N", default=50, show_default=True, type=click.IntRange(1, MAX_QUERY_LIMIT),
              help="Print at most this many deliveries.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def notify_deliveries(config_path: str | None, failed: bool, channel: str | None, limit: int, as_json: bool) -> None:
    """List the delivery log, newest first: each notification per channel, its state, and why it failed.

    \b
    tocsin notify deliveries --failed --config tocsin.toml
    tocsin notify deliveries --channel ops-webhook --limit 10 --json
    """
    query = DeliveryQuery(channel=channel, state="failed" if failed else None, limit=limit)

    async def run() -> tuple[list[tuple[Delivery, DeliveryAttempt | None]], bool]:
        async with opened_store(config_path) as monitor:
            page = await monitor.storage.list_deliveries(query)
            rows: list[tuple[Delivery, DeliveryAttempt | None]] = []
            for delivery in page.items:
                attempts = await monitor.storage.list_attempts(delivery.id) if delivery.state != "sent" else []
                rows.append((delivery, attempts[-1] if attempts else None))
            return rows, page.next_cursor is not None

    rows, more = asyncio.run(run())
    if as_json:
        payload: list[dict[str, Any]] = [{**msgspec.to_builtins(delivery), "last_attempt": msgspec.to_builtins(last)}
                                         for delivery, last in rows]
        click.echo(msgspec.json.format(msgspec.json.encode(payload), indent=2))
    else:
        for delivery, last in rows:
            click.echo(_line(delivery, last))
    if not rows:
        click.echo("no failed deliveries" if failed else "no deliveries", err=True)
    elif more:
        click.echo("… more; use --limit, --failed or --channel", err=True)


@hookimpl
def register_commands(cli):
    """Add `tocsin notify`."""
    cli.add_command(notify)
