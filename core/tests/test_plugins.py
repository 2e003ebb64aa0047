"""The plugin system: built-ins, entry points, registries, and one test per hook (test_hook_<name>)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import click
import msgspec
import pluggy
import pytest
from click.testing import CliRunner

from tocsin import hookimpl
from tocsin.cli import cli
from tocsin.errors import DuplicateRegistration, PluginError, UnknownName
from tocsin.models import Event, Notification
from tocsin.notify.channel import NotificationChannel
from tocsin.plugins import DEFAULT_PLUGINS, build_registries, describe_plugins, iter_entry_points, make_plugin_manager
from tocsin.storage.protocol import LogQuery
from tocsin.testing import make_monitor, registered

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugin-hooks.md"

GOOD_PLUGIN = """
from tocsin import hookimpl

@hookimpl
def register_alert_operators(register):
    register("near", lambda value, threshold: abs(value - threshold) < 1)
"""


class Named:
    """Base for test plugins: pluggy uses __name__ as the registered name."""

    def __init__(self, name: str) -> None:
        self.__name__ = name


def test_default_plugins_register_cleanly():
    pm = make_plugin_manager(entrypoints=False)
    pm.check_pending()
    registries = build_registries(pm)
    assert {pm.get_name(p) for p in pm.get_plugins()} == set(DEFAULT_PLUGINS)
    assert "memory" in registries.storage
    assert "log" in registries.channels
    assert set(registries.operators.names()) >= {"gt", "gte", "lt", "lte", "eq", "neq", "inside", "outside"}
    assert registries.operators.get("inside")(5, (1, 10)) is True
    assert registries.operators.get("outside")(5, (1, 10)) is False


def test_every_installed_entry_point_loads():
    for entry_point in iter_entry_points():
        pm = make_plugin_manager(entrypoints=False)
        pm.register(entry_point.load(), name=entry_point.name)
        pm.check_pending()
        build_registries(pm)


def test_entry_points_load_with_distribution_and_version(fake_dist):
    fake_dist("tocsin-near", "1.2.3", "tocsin_near", GOOD_PLUGIN)
    pm = make_plugin_manager()
    registries = build_registries(pm)
    assert registries.operators.entries["near"].source == "tocsin-near 1.2.3"
    info = {i.name: i for i in describe_plugins(pm, registries)}["near"]
    assert (info.distribution, info.version, info.hooks) == ("tocsin-near", "1.2.3", ["register_alert_operators"])
    assert info.registers == {"alert operator": ["near"]}


def test_a_broken_plugin_is_reported_in_one_line_and_the_others_load(fake_dist, capsys):
    fake_dist("tocsin-near", "1.2.3", "tocsin_near", GOOD_PLUGIN)
    fake_dist("tocsin-broken", "0.9.0", "tocsin_broken", "import not_a_real_module_xyz\n")
    pm = make_plugin_manager()
    assert "near" in build_registries(pm).operators
    [failure] = pm.load_failures
    assert (failure.distribution, failure.version) == ("tocsin-broken", "0.9.0")
    line = capsys.readouterr().err.strip()
    assert "\n" not in line
    assert line == ("tocsin: plugin 'broken' from tocsin-broken 0.9.0 failed to load: "
                    "ModuleNotFoundError: No module named 'not_a_real_module_xyz'")


def test_tocsin_load_plugins_narrows_entry_points(fake_dist, monkeypatch, capsys):
    fake_dist("tocsin-near", "1.2.3", "tocsin_near", GOOD_PLUGIN)
    fake_dist("tocsin-broken", "0.9.0", "tocsin_broken", "raise RuntimeError('boom')\n")
    monkeypatch.setenv("TOCSIN_LOAD_PLUGINS", "tocsin-near")
    pm = make_plugin_manager()
    assert pm.get_plugin("near") is not None
    assert pm.get_plugin("broken") is None
    assert pm.load_failures == []
    monkeypatch.setenv("TOCSIN_LOAD_PLUGINS", "")
    assert {pm.get_name(p) for p in make_plugin_manager().get_plugins()} == set(DEFAULT_PLUGINS)
    monkeypatch.setenv("TOCSIN_LOAD_PLUGINS", "tocsin-nope")
    [failure] = make_plugin_manager().load_failures
    assert "tocsin-nope" in str(failure) and "not installed" in str(failure)


def test_misspelled_hook_is_an_error():
    class Typo(Named):
        @hookimpl
        def register_channel(self, register):
            """Misspelled: the hook is register_notification_channels."""

    with pytest.raises(PluginError, match="unknown hook 'register_channel'"):
        make_plugin_manager(Typo("typo-plugin"), entrypoints=False)


def test_duplicate_registration_names_both_plugins():
    class Shadow(Named):
        @hookimpl
        def register_alert_operators(self, register):
            register("gt", max)

    pm = make_plugin_manager(Shadow("shadow-plugin"), entrypoints=False)
    with pytest.raises(DuplicateRegistration) as caught:
        build_registries(pm)
    assert str(caught.value) == "alert operator 'gt' registered by tocsin.builtins.operators and by shadow-plugin"


@pytest.mark.parametrize(
    ("hook", "name", "obj", "message"),
    [
        ("register_alert_operators", "Bad Name", max, "alert operator name 'Bad Name' must match"),
        ("register_alert_operators", "x", 42, "alert operator 'x' must be callable"),
        ("register_notification_channels", "x", object, "must be a class with a nested `Config` msgspec Struct"),
        ("register_config", "x", dict, "config section 'x' must be a msgspec Struct class"),
    ],
)
def test_bad_registrations_are_rejected(hook, name, obj, message):
    plugin = Named("bad-plugin")
    setattr(plugin, hook, hookimpl(lambda register: register(name, obj), specname=hook))
    pm = make_plugin_manager(plugin, entrypoints=False)
    with pytest.raises(PluginError, match=re.escape(message)):
        build_registries(pm)


def test_a_registration_hook_that_raises_names_the_plugin():
    class Exploding(Named):
        @hookimpl
        def register_health_checks(self, register):
            raise RuntimeError("kaput")

    with pytest.raises(PluginError, match="exploding: register_health_checks raised RuntimeError: kaput"):
        build_registries(make_plugin_manager(Exploding("exploding"), entrypoints=False))


def test_unknown_names_list_what_is_installed():
    registries = build_registries(make_plugin_manager(entrypoints=False))
    with pytest.raises(UnknownName, match=r"unknown storage backend 'sqlit'; installed: memory \("):
        registries.storage.get("sqlit")


def test_registered_helper_undoes_registration():
    pm = make_plugin_manager(entrypoints=False)

    class Extra(Named):
        @hookimpl
        def register_alert_operators(self, register):
            register("extra", min)

    with registered(pm, Extra("undo-extra")):
        assert "extra" in build_registries(pm).operators
    assert "extra" not in build_registries(pm).operators


# -- one test per hook --------------------------------------------------------------------------------


def test_hook_add_hookspecs():
    class Spec:
        @pluggy.HookspecMarker("tocsin")
        def register_widgets(self, register):
            """A hook a plugin adds."""

    class Adds(Named):
        @hookimpl
        def add_hookspecs(self, pm):
            pm.add_hookspecs(Spec)

    class Uses(Named):
        @hookimpl
        def register_widgets(self, register):
            register("w")

    pm = make_plugin_manager(Adds("adds"), Uses("uses"), entrypoints=False)
    seen = []
    pm.hook.register_widgets(register=seen.append)
    assert seen == ["w"]


def test_hook_register_storage_backends():
    class Null(NotificationChannel):
        class Config(msgspec.Struct):
            pass

    class Backends(Named):
        @hookimpl
        def register_storage_backends(self, register):
            register("null", Null)

    registries = build_registries(make_plugin_manager(Backends("backends"), entrypoints=False))
    assert registries.storage.get("null") is Null


def test_hook_register_alert_operators():
    monitor_ops = build_registries(make_plugin_manager(Named("n"), entrypoints=False)).operators
    assert monitor_ops.get("gte")(2, 2) and not monitor_ops.get("gt")(2, 2)
    assert monitor_ops.get("neq")(1, 2) and monitor_ops.get("lte")(1, 2) and monitor_ops.get("eq")(2, 2.0)


def test_hook_register_notification_channels():
    from tocsin.testing import CapturingChannel, CapturingPlugin

    registries = build_registries(make_plugin_manager(CapturingPlugin(), entrypoints=False))
    assert registries.channels.get("captured") is CapturingChannel
    channel = CapturingChannel()
    asyncio.run(channel.send(Notification(title="t", body="b")))
    assert [n.title for n in channel.sent] == ["t"]


def test_hook_register_health_checks():
    class Check:
        class Config(msgspec.Struct, kw_only=True):
            url: str

    class Checks(Named):
        @hookimpl
        def register_health_checks(self, register):
            register("probe", Check)

    registries = build_registries(make_plugin_manager(Checks("checks"), entrypoints=False))
    assert registries.checks.get("probe") is Check
    assert registries.checks.entries["probe"].source == "checks"


def test_hook_register_config():
    class Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        level: int = 1

    class Sections(Named):
        @hookimpl
        def register_config(self, register):
            register("mine", Section)

    monitor = make_monitor(Sections("sections"), config={"plugins": {"mine": {"level": 3}}})
    assert monitor.config.plugins["mine"] == Section(level=3)


def test_hook_register_commands():
    class Commands(Named):
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            def hello():
                """Say hello."""
                click.echo("hello from a plugin")

    pm = make_plugin_manager(Commands("commands"), entrypoints=False)
    pm.hook.register_commands(cli=cli)
    try:
        result = CliRunner().invoke(cli, ["hello"], obj=pm)
        assert result.output == "hello from a plugin\n"
    finally:
        cli.commands.pop("hello")


async def test_hook_startup():
    calls = []

    class Lifecycle(Named):
        @hookimpl
        async def startup(self, monitor):
            calls.append(("startup", monitor.storage is not None))

    async with make_monitor(Lifecycle("lifecycle")):
        assert calls == [("startup", True)]
    assert calls == [("startup", True)]


async def test_hook_shutdown():
    calls = []

    class Failing(Named):
        @hookimpl
        def shutdown(self):
            raise RuntimeError("shutdown bug")

    class Lifecycle(Named):
        @hookimpl
        async def shutdown(self, monitor):
            calls.append(("shutdown", monitor.closed))

    monitor = make_monitor(Lifecycle("lifecycle"), Failing("failing"))
    async with monitor:
        monitor.log.info("written at close")
        assert calls == []
    assert calls == [("shutdown", True)]
    page = await monitor.storage.search_logs(LogQuery())
    assert [hit.record.message for hit in page.items] == ["written at close"]


async def test_hook_on_event():
    seen = []

    class Broken(Named):
        @hookimpl
        def on_event(self, event):
            raise RuntimeError("observer bug")

    class Observer(Named):
        @hookimpl
        async def on_event(self, monitor, event):
            if event.topic == "test":  # the monitor's own services publish events too
                seen.append(event.type)

    monitor = make_monitor(Broken("broken"), Observer("observer"))
    async with monitor:
        monitor.emit(Event(topic="test", type="firing", time_ns=1))
        for _ in range(50):
            if seen:
                break
            await asyncio.sleep(0.01)
    assert seen == ["firing"]


def test_hook_render_notification():
    class Renderer(Named):
        @hookimpl
        def render_notification(self, monitor, notification, channel):
            if channel == "loud":
                return Notification(title=notification.title.upper(), body=notification.body)
            return None

    pm = make_plugin_manager(Renderer("renderer"), entrypoints=False)
    note = Notification(title="disk full", body="92%")
    assert pm.hook.render_notification(monitor=None, notification=note, channel="loud").title == "DISK FULL"
    assert pm.hook.render_notification(monitor=None, notification=note, channel="quiet") is None


# -- meta-tests ---------------------------------------------------------------------------------------


def hook_names() -> list[str]:
    pm = make_plugin_manager(entrypoints=False)
    return sorted(name for name in dir(pm.hook) if not name.startswith("_"))


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_has_a_test(name):
    assert f"test_hook_{name}" in globals(), f"add a test_hook_{name} to {__file__}"


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_documented_with_its_signature(name):
    pm = make_plugin_manager(entrypoints=False)
    args = ", ".join(getattr(pm.hook, name).spec.argnames)
    assert f"## {name}({args})" in DOCS.read_text(), f"document {name}({args}) in {DOCS}"


def test_importing_tocsin_does_not_import_plugins_or_heavy_modules():
    import subprocess

    code = "import sys, tocsin; print(sorted(m for m in sys.modules if m.startswith(('tocsin_', 'httpx'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tocsin_load_plugins_takes_the_entry_point_name_too(fake_dist, monkeypatch, capsys):
    fake_dist("tocsin-near", "1.2.3", "tocsin_near", GOOD_PLUGIN)
    fake_dist("tocsin-far", "1.0.0", "tocsin_far", GOOD_PLUGIN.replace("near", "far"))
    monkeypatch.setenv("TOCSIN_LOAD_PLUGINS", "near")  # as `tocsin plugins` shows it, not tocsin-near
    pm = make_plugin_manager()
    assert pm.get_plugin("near") is not None and pm.get_plugin("far") is None
    assert pm.load_failures == []
    assert capsys.readouterr().err == ""


def test_tocsin_load_plugins_says_clearly_when_a_name_matches_nothing(fake_dist, monkeypatch, capsys):
    fake_dist("tocsin-near", "1.2.3", "tocsin_near", GOOD_PLUGIN)
    monkeypatch.setenv("TOCSIN_LOAD_PLUGINS", "nearby,near")
    pm = make_plugin_manager()
    assert pm.get_plugin("near") is not None
    [failure] = pm.load_failures
    message = str(failure)
    assert message.startswith("plugin 'nearby' named in TOCSIN_LOAD_PLUGINS is not installed")
    assert "near (tocsin-near)" in message.split("installed: ", 1)[1]
    assert "'?'" not in message
    assert capsys.readouterr().err.strip() == f"tocsin: {message}"
