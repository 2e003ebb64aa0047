"""Built-in `tocsin notify ...` commands: send a test message to a configured channel."""

from __future__ import annotations

import asyncio

import click

from tocsin.hookspecs import hookimpl


@click.group("notify")
def notify() -> None:
    """Notification channels: send a test message."""


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


@hookimpl
def register_commands(cli):
    """Add `tocsin notify`."""
    cli.add_command(notify)
