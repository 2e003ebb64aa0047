"""The plugin manager: built-in plugins, installed entry points, and the registries built from them.

Built-in features are plugins too, listed in DEFAULT_PLUGINS and always loaded. Installed distributions
declare `[project.entry-points.tocsin]`; `TOCSIN_LOAD_PLUGINS` narrows them to a comma-separated list
of distribution names (`tocsin-slack`) or entry-point names (`slack`), as `tocsin plugins` shows them
(empty: none). A plugin that fails to import is reported in one line naming its distribution and version,
and the others still load. Every command start loads them all, so a plugin adds a heavy command as a
`LazyCommand`, imported only when it runs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import click
import msgspec
import pluggy

from tocsin import hookspecs
from tocsin.errors import DuplicateRegistration, PluginError, UnknownName

ENTRY_POINT_GROUP = "tocsin"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "tocsin.builtins.memory_storage",
    "tocsin.builtins.operators",
    "tocsin.builtins.log_channel",
    "tocsin.builtins.render",
    "tocsin.builtins.health_checks",
    "tocsin.builtins.alerting_commands",
    "tocsin.builtins.notify_commands",
    "tocsin.builtins.logs_commands",
    "tocsin.builtins.doctor_commands",
)

KNOWN_PLUGINS: frozenset[str] = frozenset({"slack", "email", "pagerduty", "webhook", "sqlite", "postgres"})
"""Names (a channel type, a storage backend) that tocsin's own `tocsin-<name>` distributions provide."""

NAME_RULE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")

T = TypeVar("T")


@dataclass(frozen=True)
class LoadFailure:
    """An entry point that could not be loaded, with the reason in one line."""

    entry_point: str
    distribution: str
    version: str
    error: str

    def __str__(self) -> str:
        if not self.distribution:  # a name in TOCSIN_LOAD_PLUGINS that matches nothing installed
            return self.error
        return f"plugin {self.entry_point!r} from {self.distribution} {self.version} failed to load: {self.error}"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus what tocsin remembers about where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self.load_failures: list[LoadFailure] = []
        self.dists: dict[str, tuple[str, str]] = {}

    def source_of(self, plugin: object) -> str:
        """`distribution version` for an installed plugin, else its registered name (built-ins, tests)."""
        name = self.get_name(plugin) or repr(plugin)
        dist = self.dists.get(name)
        return f"{dist[0]} {dist[1]}" if dist and dist[0] != "tocsin" else name


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _allowed_names() -> set[str] | None:
    """TOCSIN_LOAD_PLUGINS as a set of names: each a distribution (`tocsin-slack`) or an entry point (`slack`)."""
    raw = os.environ.get("TOCSIN_LOAD_PLUGINS")
    if raw is None:
        return None
    return {_normal(name) for name in raw.split(",") if name.strip()}


def _load_entry_points(pm: PluginManager) -> None:
    allowed = _allowed_names()
    found: set[str] = set()
    installed: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        dist_name = _normal(dist.metadata["Name"] or "")
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            installed.setdefault(ep.name, dist.metadata["Name"])
            if allowed is not None and not allowed & {dist_name, _normal(ep.name)}:
                continue
            found |= {dist_name, _normal(ep.name)}
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as error:
                failure = LoadFailure(ep.name, dist.metadata["Name"], dist.version, _one_line(error))
                pm.load_failures.append(failure)
                print(f"tocsin: {failure}", file=sys.stderr)
                continue
            pm.dists[ep.name] = (dist.metadata["Name"], dist.version)
    choices = ", ".join(f"{name} ({dist})" for name, dist in sorted(installed.items())) or "none"
    for missing in sorted((allowed or set()) - found):
        failure = LoadFailure(missing, "", "", f"plugin {missing!r} named in TOCSIN_LOAD_PLUGINS is not installed "
                                               f"(give a distribution or entry-point name); installed: {choices}")
        pm.load_failures.append(failure)
        print(f"tocsin: {failure}", file=sys.stderr)


def make_plugin_manager(*plugins: object, entrypoints: bool = True) -> PluginManager:
    """Build a plugin manager: built-ins, then installed entry points, then `plugins` (tests, embedders)."""
    pm = PluginManager()
    version = importlib.metadata.version("tocsin")
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        pm.dists[module_name] = ("tocsin", version)
    if entrypoints:
        _load_entry_points(pm)
    for plugin in plugins:
        pm.register(plugin, name=getattr(plugin, "__name__", None) or type(plugin).__name__)
    pm.hook.add_hookspecs.call_historic(kwargs={"pm": pm})
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginError(f"{pm.source_of(error.plugin)}: {error}") from None
    return pm


# -- Registries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered(Generic[T]):
    """One registry entry and the plugin that provided it."""

    name: str
    obj: T
    plugin: str
    source: str


@dataclass
class Registry(Generic[T]):
    """Named things of one kind (channels, backends, ...), with who registered each."""

    kind: str
    entries: dict[str, Registered[T]] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries.values())

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self.entries)

    def get(self, name: str) -> T:
        """The entry called `name`, or UnknownName listing what is installed."""
        try:
            return self.entries[name].obj
        except KeyError:
            raise UnknownName(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        """The message for a name nothing registered: what is installed, and which package a known name needs."""
        message = f"unknown {self.kind} {name!r}; {self.describe()}"
        if name in KNOWN_PLUGINS:
            message += f"; {name!r} comes with tocsin-{name}: install it (pip install tocsin-{name})"
        return message

    def describe(self) -> str:
        """`installed: a (dist 1.0), b (dist 2.0)`, for error messages."""
        if not self.entries:
            return f"no {self.kind} is installed"
        items = ", ".join(f"{entry.name} ({entry.source})" for entry in self.entries.values())
        return f"installed: {items}"


def _check_configurable(kind: str, name: str, obj: object) -> None:
    config = getattr(obj, "Config", None)
    if not (isinstance(obj, type) and isinstance(config, type) and issubclass(config, msgspec.Struct)):
        raise PluginError(f"{kind} {name!r} must be a class with a nested `Config` msgspec Struct")


def _check_operator(kind: str, name: str, obj: object) -> None:
    if not callable(obj):
        raise PluginError(f"{kind} {name!r} must be callable as fn(value, threshold) -> bool")


def _check_struct(kind: str, name: str, obj: object) -> None:
    if not (isinstance(obj, type) and issubclass(obj, msgspec.Struct)):
        raise PluginError(f"{kind} {name!r} must be a msgspec Struct class")


@dataclass(frozen=True)
class RegistryKind:
    """How one registry is filled: the hook, the human name, and the check each entry must pass."""

    attribute: str
    hook: str
    kind: str
    check: Callable[[str, str, object], None]


REGISTRY_KINDS: tuple[RegistryKind, ...] = (
    RegistryKind("storage", "register_storage_backends", "storage backend", _check_configurable),
    RegistryKind("operators", "register_alert_operators", "alert operator", _check_operator),
    RegistryKind("channels", "register_notification_channels", "notification channel", _check_configurable),
    RegistryKind("checks", "register_health_checks", "health check", _check_configurable),
    RegistryKind("config", "register_config", "config section", _check_struct),
)


@dataclass
class Registries:
    """Every registry, built once from a plugin manager."""

    storage: Registry[type]
    operators: Registry[Callable[..., bool]]
    channels: Registry[type]
    checks: Registry[type]
    config: Registry[type[msgspec.Struct]]

    def provided_by(self, plugin: str) -> dict[str, list[str]]:
        """What one plugin (by registered name) registered: {"notification channel": ["slack"], ...}."""
        provided: dict[str, list[str]] = {}
        for spec in REGISTRY_KINDS:
            for entry in getattr(self, spec.attribute):
                if entry.plugin == plugin:
                    provided.setdefault(spec.kind, []).append(entry.name)
        return provided


def _fill(pm: PluginManager, spec: RegistryKind) -> Registry[Any]:
    registry: Registry[Any] = Registry(spec.kind)
    caller = getattr(pm.hook, spec.hook)
    # Call each plugin's implementation on its own (in registration order: built-ins first), so every
    # entry is stamped with who made it.
    for impl in caller.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        source = pm.source_of(impl.plugin)

        def register(name: str, obj: object, plugin_name: str = plugin_name, source: str = source) -> None:
            if not isinstance(name, str) or not NAME_RULE.match(name):
                raise PluginError(
                    f"{source}: {spec.kind} name {name!r} must match {NAME_RULE.pattern} "
                    "(lowercase letters, digits, '_', '.', '-')"
                )
            spec.check(spec.kind, name, obj)
            if name in registry.entries:
                raise DuplicateRegistration(
                    f"{spec.kind} {name!r} registered by {registry.entries[name].source} and by {source}"
                )
            registry.entries[name] = Registered(name, obj, plugin_name, source)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as error:
            raise PluginError(f"{source}: {spec.hook} raised {_one_line(error)}") from error
    return registry


def build_registries(pm: PluginManager) -> Registries:
    """Call every registration hook and collect the results, rejecting bad or duplicate names."""
    return Registries(**{spec.attribute: _fill(pm, spec) for spec in REGISTRY_KINDS})


# -- Introspection ---------------------------------------------------------------------------------


class PluginInfo(msgspec.Struct, kw_only=True):
    """What `tocsin plugins` shows for one plugin."""

    name: str
    distribution: str
    version: str
    hooks: list[str]
    registers: dict[str, list[str]]


def describe_plugins(pm: PluginManager, registries: Registries) -> list[PluginInfo]:
    """Every registered plugin: where it came from, the hooks it implements, and what it registers."""
    infos: list[PluginInfo] = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        distribution, version = pm.dists.get(name, ("", ""))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        infos.append(
            PluginInfo(
                name=name,
                distribution=distribution,
                version=version,
                hooks=hooks,
                registers=registries.provided_by(name),
            )
        )
    return sorted(infos, key=lambda info: (info.distribution != "tocsin", info.distribution, info.name))


def iter_entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    """Every installed `tocsin` entry point (what `make_plugin_manager` would try to load)."""
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


async def await_me_maybe(value: Any) -> Any:
    """Call `value` if it is callable, await it if awaitable, and return the result (datasette's pattern).

    Lifecycle and observer hooks may return any of the three, so the monitor awaits hook results through this.
    """
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


# -- Commands --------------------------------------------------------------------------------------


class LazyCommand(click.Command):
    """Stands in for the click command (or group) at `target` ("module:attribute") until it is run.

    `tocsin --help` lists it with `summary` (give the real command's first docstring line, and the listing is
    unchanged) without importing anything; `tocsin NAME ...`, its `--help` and shell completion import the
    target and hand over to it.
    """

    def __init__(self, name: str, target: str, summary: str, *, hidden: bool = False) -> None:
        module, _, attribute = target.partition(":")
        if not module or not attribute:
            raise ValueError(f"LazyCommand target {target!r} must be 'module:attribute'")
        super().__init__(name, help=summary, hidden=hidden, add_help_option=False)
        self.target = target

    def load(self) -> click.Command:
        """Import the real command (once: Python caches the module)."""
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"LazyCommand target {self.target!r} is not a click command")
        return command

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        """Parse `args` with the real command: its context, and so its `invoke`, take over from here."""
        return self.load().make_context(info_name, args, parent=parent, **extra)
