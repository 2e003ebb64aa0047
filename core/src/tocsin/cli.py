"""The `tocsin` command line. Plugins add commands through the `register_commands` hook."""

from __future__ import annotations

import sys

import click
import msgspec

from tocsin import __version__
from tocsin.config.source import ConfigFileMissing
from tocsin.errors import ConfigError, TocsinError
from tocsin.plugins import PluginManager, build_registries, describe_plugins, make_plugin_manager


def _plugin_manager(ctx: click.Context) -> PluginManager:
    """The plugin manager built once per invocation (kept on the click context)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = make_plugin_manager()
    return root.obj


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tocsin")
def cli() -> None:
    """tocsin: metrics, traces, logs, alerts and notifications for Python, embedded or served."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins: distribution, version, hooks and what each registers."""
    pm = _plugin_manager(ctx)
    infos = describe_plugins(pm, build_registries(pm))
    if as_json:
        payload = {"plugins": infos, "failed": [failure.__dict__ for failure in pm.load_failures]}
        click.echo(msgspec.json.format(msgspec.json.encode(payload), indent=2))
        return
    for info in infos:
        origin = f"{info.distribution} {info.version}" if info.distribution else "registered at runtime"
        click.echo(f"{info.name}  ({origin})")
        click.echo(f"  hooks: {', '.join(info.hooks) or '-'}")
        for kind, names in sorted(info.registers.items()):
            click.echo(f"  {kind}: {', '.join(names)}")
    for failure in pm.load_failures:
        click.echo(f"FAILED {failure}", err=True)


@cli.group()
def config() -> None:
    """Work with config files."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_context
def config_check(ctx: click.Context, path: str) -> None:
    """Validate a tocsin.toml (or .json) as startup would and print every problem with its location.

    Exit 0 when the config is good, 1 when it has problems, 2 when the file does not exist.
    """
    from pathlib import Path

    from tocsin.assembly import load_config
    from tocsin.config.source import locate
    from tocsin.monitor import Monitor

    pm = _plugin_manager(ctx)
    registries = build_registries(pm)
    try:
        config = load_config(path, registries=registries)
        Monitor(config, pm=pm, registries=registries)  # builds every service as startup does, starts nothing
    except ConfigFileMissing as error:
        click.echo(str(error), err=True)
        ctx.exit(ConfigFileMissing.exit_code)
    except ConfigError as error:
        if error.source is None:  # a service's own check: point at the file and its lines too
            text = Path(path).read_text(encoding="utf-8") if Path(path).suffix.lower() != ".json" else None
            error = ConfigError(locate(error.problems, text), path)
        click.echo(str(error), err=True)
        count = len(error.problems)
        click.echo(f"{path}: {count} problem{'s' if count != 1 else ''}", err=True)
        ctx.exit(1)
    click.echo(f"{path}: ok")


def main(argv: list[str] | None = None) -> None:
    """Entry point: build the command group with plugin commands, run it, and turn tocsin errors into messages."""
    try:
        pm = make_plugin_manager()
        pm.hook.register_commands(cli=cli)
        cli.main(args=argv, prog_name="tocsin", obj=pm, standalone_mode=True)
    except TocsinError as error:
        click.echo(f"tocsin: error: {error}", err=True)
        sys.exit(ConfigFileMissing.exit_code if isinstance(error, ConfigFileMissing) else 1)
    except KeyboardInterrupt:  # Ctrl-C while plugins load, before click's own handler runs: the same answer
        click.echo("Aborted!", err=True)
        sys.exit(1)
