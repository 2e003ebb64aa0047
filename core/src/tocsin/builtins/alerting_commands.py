"""Built-in `tocsin rules test` and `tocsin alerts list|ack|resolve` commands.

`rules test FILE...` runs promtool-style rule test files (tocsin.testing.ruletests) and exits 1 with a diff of
what differed. The `alerts` commands open the storage of a config (`--config`, else `TOCSIN_CONFIG`)
without starting the monitor's services, so they work next to a running application: an acknowledgement
or a manual resolve made here is picked up by its evaluator at the next evaluation.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from collections.abc import AsyncIterator

import click
import msgspec

from tocsin.errors import ConfigError
from tocsin.hookspecs import hookimpl
from tocsin.models import Alert
from tocsin.storage.protocol import AlertQuery

STATES = ("inactive", "pending", "firing", "recovering", "resolved", "nodata", "error")


@click.group()
def rules() -> None:
    """Work with alert rules."""


@rules.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def rules_test(ctx: click.Context, files: tuple[str, ...]) -> None:
    """Run rule test files (inputs over virtual time -> expected alerts and notifications)."""
    from tocsin.plugins import make_plugin_manager
    from tocsin.testing.ruletests import render, run_file

    pm = ctx.find_root().obj or make_plugin_manager()
    passed = failed = 0
    for path in files:
        try:
            outcomes = run_file(path, pm)
        except ConfigError as error:
            click.echo(f"FAIL  {path}: {error}", err=True)
            failed += 1
            continue
        for outcome in outcomes:
            click.echo(render(outcome))
            passed += outcome.passed
            failed += not outcome.passed
    click.echo(f"{passed} passed, {failed} failed")
    ctx.exit(1 if failed else 0)


@click.group()
def alerts() -> None:
    """List, acknowledge and resolve alerts in a config's storage."""


CONFIG_OPTION = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                             help="The config whose storage to use (default: TOCSIN_CONFIG, else defaults).")


@contextlib.asynccontextmanager
async def _opened(config_path: str | None) -> AsyncIterator[object]:
    """A monitor built from the config with only its storage opened (no flusher, no evaluator)."""
    from tocsin.monitor import Monitor

    monitor = Monitor.from_config(config_path)
    backend = monitor.registries.storage.get(monitor.config.storage.backend)
    options = monitor.config.storage.options
    monitor.storage = backend(options if options is not None else backend.Config())
    await monitor.storage.open()
    try:
        yield monitor
    finally:
        await monitor.storage.close()


def _line(alert: Alert) -> str:
    labels = ", ".join(f"{key}={value}" for key, value in sorted(alert.labels.items())
                       if key not in ("alertname", "severity"))
    handling = "" if alert.handling == "active" else f" ({alert.handling}"
    handling += f" by {alert.acknowledged_by})" if alert.acknowledged_by else (")" if handling else "")
    return f"{alert.fingerprint}  {alert.state:<10} {alert.severity:<8} {alert.rule}  {{{labels}}}{handling}"


@alerts.command("list")
@CONFIG_OPTION
@click.option("--state", "states", multiple=True, type=click.Choice(STATES), help="Only these states (repeatable).")
@click.option("--rule", default=None, help="Only this rule's alerts.")
@click.option("--all", "everything", is_flag=True, help="Include resolved and inactive alerts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def alerts_list(config_path: str | None, states: tuple[str, ...], rule: str | None, everything: bool,
                as_json: bool) -> None:
    """List alerts, most recently changed first."""
    from tocsin.alerting.state import ACTIVE_STATES

    wanted = list(states) or ([] if everything else sorted(ACTIVE_STATES))

    async def run() -> list[Alert]:
        async with _opened(config_path) as monitor:
            found: list[Alert] = []
            query = AlertQuery(rule=rule, states=wanted, limit=1000)  # type: ignore[arg-type]
            while True:
                page = await monitor.storage.list_alerts(query)  # type: ignore[attr-defined]
                found += page.items
                if page.next_cursor is None:
                    return found
                query = msgspec.structs.replace(query, cursor=page.next_cursor)

    found = asyncio.run(run())
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(found), indent=2))
        return
    for alert in found:
        click.echo(_line(alert))
    if not found:
        click.echo("no alerts")


@alerts.command("ack")
@CONFIG_OPTION
@click.argument("fingerprint")
@click.option("--by", default=getpass.getuser, show_default="the current user", help="Who acknowledges.")
@click.option("--comment", default="", help="Why, or what is being done.")
@click.option("--for", "duration", default=None, help="Notify again after this long if still firing (e.g. 2h).")
def alerts_ack(config_path: str | None, fingerprint: str, by: str, comment: str, duration: str | None) -> None:
    """Acknowledge an alert: firing notifications stop until it resolves (or until --for has passed)."""
    from tocsin.alerting.service import AlertingService
    from tocsin.values import Duration

    try:
        seconds = None if duration is None else Duration.parse(duration)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--for") from None

    async def run() -> Alert:
        async with _opened(config_path) as monitor:
            service = AlertingService(monitor)  # type: ignore[arg-type]
            until = None if seconds is None else monitor.clock.now_ns() + round(seconds * 1e9)  # type: ignore[attr-defined]
            return await service.acknowledge(fingerprint, by, comment, until)

    click.echo(_line(asyncio.run(run())))


@alerts.command("resolve")
@CONFIG_OPTION
@click.argument("fingerprint")
@click.option("--by", default=getpass.getuser, show_default="the current user", help="Who resolves.")
@click.option("--comment", default="", help="Why.")
def alerts_resolve(config_path: str | None, fingerprint: str, by: str, comment: str) -> None:
    """Resolve an alert by hand: it stays quiet until its condition clears once."""
    from tocsin.alerting.service import AlertingService

    async def run() -> Alert:
        async with _opened(config_path) as monitor:
            return await AlertingService(monitor).resolve(fingerprint, by, comment)  # type: ignore[arg-type]

    click.echo(_line(asyncio.run(run())))


@hookimpl
def register_commands(cli):
    """Add the `rules` and `alerts` command groups."""
    cli.add_command(rules)
    cli.add_command(alerts)
