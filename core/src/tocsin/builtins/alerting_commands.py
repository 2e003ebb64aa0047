"""Built-in `tocsin rules test` and `tocsin alerts list|ack|resolve` commands.

`rules test FILE...` runs promtool-style rule test files (tocsin.testing.ruletests) and exits 1 with a diff of
what differed. The `alerts` commands open the storage of a config (`--config`, else `TOCSIN_CONFIG`)
without starting the monitor's services, so they work next to a running application. An acknowledgement
or a manual resolve made here goes through the monitor's own alerting service and notify router, as one
made in process does: the notification is put in the outbox with the transition (the running application's
dispatcher sends it) and its evaluator sees the change at the next evaluation.
"""

from __future__ import annotations

import asyncio
import getpass
from typing import Any

import click
import msgspec

from tocsin.builtins.stored import CONFIG_OPTION, opened_store
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


def _line(alert: Alert) -> str:
    """One alert as the commands print it; a manually resolved alert shows as resolved, whatever its condition."""
    labels = ", ".join(f"{key}={value}" for key, value in sorted(alert.labels.items())
                       if key not in ("alertname", "severity"))
    state, note = alert.state, ""
    if alert.handling == "resolved":
        state, note = "resolved", " (by hand; its condition has not cleared yet)"
    elif alert.handling == "acknowledged":
        note = f" (acknowledged by {alert.acknowledged_by})" if alert.acknowledged_by else " (acknowledged)"
    return f"{alert.fingerprint}  {state:<10} {alert.severity:<8} {alert.rule}  {{{labels}}}{note}"


def _told(monitor: Any, before: dict[str, int]) -> str:
    """Which channels the last action queued a notification for (the outbox rows its router made)."""
    queued = [name for name, count in monitor.notify.router.pending.items() if count > before.get(name, 0)]
    if not queued:
        return "no channel is notified of this"
    return (f"notification queued for {', '.join(queued)}: the running application's dispatcher sends it "
            "(or the next one started with this config)")


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
        async with opened_store(config_path) as monitor:
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
    """Acknowledge an alert: channels are told, and firing notifications stop until it resolves (or --for passed)."""
    from tocsin.values import Duration

    try:
        seconds = None if duration is None else Duration.parse(duration)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--for") from None

    async def run() -> tuple[Alert, str]:
        async with opened_store(config_path) as monitor:
            # the monitor's own alerting service: routed by its notify router, so the acknowledgement is put
            # in the outbox with the transition, exactly as an in-process acknowledge does
            before = dict(monitor.notify.router.pending)
            until = None if seconds is None else monitor.clock.now_ns() + round(seconds * 1e9)
            alert = await monitor.alerting.acknowledge(fingerprint, by, comment, until)
            return alert, _told(monitor, before)

    alert, told = asyncio.run(run())
    click.echo(_line(alert))
    click.echo(told, err=True)  # stdout keeps the one alert line scripts read


@alerts.command("resolve")
@CONFIG_OPTION
@click.argument("fingerprint")
@click.option("--by", default=getpass.getuser, show_default="the current user", help="Who resolves.")
@click.option("--comment", default="", help="Why.")
def alerts_resolve(config_path: str | None, fingerprint: str, by: str, comment: str) -> None:
    """Resolve an alert by hand: channels are told `resolved`, and it stays quiet until its condition clears once."""

    async def run() -> tuple[Alert, str]:
        async with opened_store(config_path) as monitor:
            before = dict(monitor.notify.router.pending)  # routed like an in-process resolve (see `ack`)
            alert = await monitor.alerting.resolve(fingerprint, by, comment)
            return alert, _told(monitor, before)

    alert, told = asyncio.run(run())
    click.echo(_line(alert))
    click.echo(told, err=True)  # stdout keeps the one alert line scripts read


@hookimpl
def register_commands(cli):
    """Add the `rules` and `alerts` command groups."""
    cli.add_command(rules)
    cli.add_command(alerts)
