"""Built-in `tocsin doctor`: what this installation would do, without opening or creating anything.

It prints the tocsin and Python versions, where the config comes from (`--config`, `TOCSIN_CONFIG`, or the
defaults), the storage backend and where it keeps data (the same words as the startup line `tocsin: storing
in ...`, plus whether the file exists yet), the installed plugins with their distributions and versions, and
the plugins that failed to load, and the records dropped so far by signal and reason (tocsin's own
`tocsin_records_dropped_total`, read from a store that already exists, with the setting to change). A missing
store is never opened, so it stays missing. It exits 1 when the config has problems or a plugin failed to
load.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from typing import Any

import click
import msgspec

from tocsin.errors import TocsinError
from tocsin.hookspecs import hookimpl


def _config_source(config_path: str | None) -> tuple[str, str | None, str]:
    """(kind, path, words): where `load_config` would read the config from."""
    if config_path is not None:
        return "file", os.path.abspath(config_path), f"{os.path.abspath(config_path)} (--config)"
    env = os.environ.get("TOCSIN_CONFIG")
    if env:
        return "TOCSIN_CONFIG", os.path.abspath(env), f"{os.path.abspath(env)} (from TOCSIN_CONFIG)"
    return "defaults", None, "defaults (no --config and TOCSIN_CONFIG is not set)"


def _storage(config: Any, registries: Any) -> dict[str, Any]:
    """The backend, its location in the startup line's words, and whether its file exists (never opened)."""
    from tocsin.storage.location import storage_location

    name = config.storage.backend
    options = config.storage.options
    if options is None and name in registries.storage:
        options = registries.storage.get(name).Config()
    location = storage_location(name, options)
    path = getattr(options, "path", None)
    full = os.path.abspath(path) if isinstance(path, str) and path else None
    exists = None
    if full is not None and location == f"{name} at {full}":
        exists = os.path.exists(full)
        location += f" ({os.path.getsize(full) / 1024:,.0f} KB)" if exists else " (not created yet)"
    return {"backend": name, "location": location, "path": full if exists is not None else None, "exists": exists}


FIXES = {"buffer_full": 'raise buffer_size or set overflow = "block" in [logging], [tracing] or [workflows]'}


def _drops(config: Any, registries: Any) -> dict[str, float]:
    """Records dropped so far by `signal/reason`, from tocsin's own counter in the (existing) store."""
    from tocsin.storage.protocol import MAX_NS, MetricQuery

    backend = registries.storage.get(config.storage.backend)
    storage = backend(config.storage.options if config.storage.options is not None else backend.Config())
    query = MetricQuery(name="tocsin_records_dropped_total", start_ns=0, end_ns=MAX_NS, aggregate="sum",
                        by=["signal", "reason"])

    async def read() -> list[Any]:
        await storage.open()
        try:
            return await storage.query_metrics(query)
        finally:
            await storage.close()

    return {f"{s.labels.get('signal', '')}/{s.labels.get('reason', '')}": sum(v for _, v in s.points)
            for s in asyncio.run(read())}


def diagnose(pm: Any, config_path: str | None) -> dict[str, Any]:
    """Everything `tocsin doctor` reports, as plain data."""
    from tocsin import __version__
    from tocsin.assembly import load_config
    from tocsin.plugins import build_registries, describe_plugins

    kind, path, words = _config_source(config_path)
    registries = build_registries(pm)
    report: dict[str, Any] = {
        "tocsin": __version__,
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "config": {"source": kind, "path": path, "text": words},
        "storage": None,
        "dropped": None,
        "problems": [],
        "plugins": [msgspec.to_builtins(info) for info in describe_plugins(pm, registries)],
        "failed": [str(failure) for failure in pm.load_failures],
    }
    try:
        config = load_config(config_path, registries=registries)
    except TocsinError as error:
        report["problems"] = str(error).splitlines()
    else:
        report["storage"] = _storage(config, registries)
        if report["storage"]["exists"]:
            try:
                report["dropped"] = _drops(config, registries)
            except TocsinError as error:
                report["problems"].append(f"reading dropped records from storage failed: {error}")
    return report


def _drop_lines(dropped: dict[str, float]) -> list[str]:
    """`drops:` and one line per signal and reason with how many and what to change."""
    if not any(dropped.values()):
        return ["drops:   none recorded"]
    lines = ["drops:"]
    for key, count in sorted(dropped.items()):
        signal, _, reason = key.partition("/")
        fix = f" - {FIXES[reason]}" if reason in FIXES else ""
        lines.append(f"  {signal}: {count:,.0f} ({reason}){fix}")
    return lines


def _plugin_lines(plugins: list[dict[str, Any]]) -> list[str]:
    """Built-ins in one line; every other plugin on its own line with its distribution, version and names."""
    builtin = [info for info in plugins if info["distribution"] == "tocsin"]
    lines = [f"  tocsin {builtin[0]['version']}: {len(builtin)} built-in plugins"] if builtin else []
    for info in plugins:
        if info["distribution"] == "tocsin":
            continue
        origin = f"{info['distribution']} {info['version']}" if info["distribution"] else "registered at runtime"
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(info["registers"].items()))
        provides = provides or f"hooks: {', '.join(info['hooks']) or '-'}"
        lines.append(f"  {origin} ({info['name']}) - {provides}")
    return lines


@click.command("doctor")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="The config to inspect (default: TOCSIN_CONFIG, else defaults).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def doctor(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Show versions, the config source, where data is stored, records dropped, and the installed plugins;
    create nothing."""
    from tocsin.plugins import make_plugin_manager

    root = ctx.find_root()
    pm = root.obj if root.obj is not None else make_plugin_manager()
    report = diagnose(pm, config_path)
    failing = bool(report["problems"] or report["failed"])
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(report), indent=2))
        ctx.exit(1 if failing else 0)
    python = report["python"]
    click.echo(f"tocsin:  {report['tocsin']}")
    click.echo(f"python:  {python['version']} ({python['executable']})")
    click.echo(f"config:  {report['config']['text']}")
    storage = report["storage"]
    click.echo(f"storage: {storage['location'] if storage else 'unknown: the config has problems (below)'}")
    for line in _drop_lines(report["dropped"]) if report["dropped"] is not None else ():
        click.echo(line)
    click.echo("plugins:")
    for line in _plugin_lines(report["plugins"]):
        click.echo(line)
    for failure in report["failed"]:
        click.echo(f"FAILED {failure}", err=True)
    for problem in report["problems"]:
        click.echo(problem, err=True)
    ctx.exit(1 if failing else 0)


@hookimpl
def register_commands(cli):
    """Add `tocsin doctor`."""
    cli.add_command(doctor)
