"""The `tocsin` command line. Plugins add commands through the `register_commands` hook."""

from __future__ import annotations

import sys

import click
import msgspec

from tocsin import __version__
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
    """Validate a tocsin.toml (or .json) and print every problem with its location."""
    from tocsin.assembly import load_config

    pm = _plugin_manager(ctx)
    try:
        load_config(path, registries=build_registries(pm))
    except ConfigError as error:
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
        sys.exit(1)
