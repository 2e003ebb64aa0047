"""Reading tocsin.toml: where the config comes from, and every problem in it reported at once.

Where the config comes from: an explicit path or dict, else the file named by `TOCSIN_CONFIG`, else
nothing at all — which is a working embedded setup (SQLite at ./tocsin.db when tocsin-sqlite is installed,
in-memory storage otherwise). Unknown keys, wrong types, bad durations, unset `${ENV}` variables and
names no plugin registered are all reported together, each with its path (and line, for TOML files).
Checks that belong to other wings come in as `checks`, so this module imports none of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tocsin.config.schema import Config
from tocsin.config.source import interpolate, locate, read_file
from tocsin.config.walker import Walker
from tocsin.errors import ConfigError, ConfigProblem

Check = Callable[[Config], list[ConfigProblem]]


def _default_backend(registries: Any) -> str:
    """SQLite when tocsin-sqlite is installed (the embedded default), else in-memory storage."""
    return "sqlite" if registries is not None and "sqlite" in registries.storage else "memory"


def _check_references(config: Config, registries: Any) -> list[ConfigProblem]:
    """Cross-section checks: unique names, and every name a rule or check refers to exists."""
    problems: list[ConfigProblem] = []

    def unique(items: list[Any], path: str) -> set[str]:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.name in seen:
                problems.append(ConfigProblem(f"{path}[{i}].name", f"duplicate name {item.name!r}"))
            seen.add(item.name)
        return seen

    channels = unique(config.channels, "channels")
    checks = unique(config.health.checks, "health.checks")
    unique(config.alerting.rules, "alerting.rules")
    known_channels = ", ".join(sorted(channels)) or "none configured"
    for i, rule in enumerate(config.alerting.rules):
        path = f"alerting.rules[{i}]"
        if registries is not None and rule.op not in registries.operators:
            problems.append(ConfigProblem(f"{path}.op", f"unknown {registries.operators.kind} {rule.op!r}; "
                                                        f"{registries.operators.describe()}"))
        ladders = [(f"{path}.channels", rule.channels)]
        ladders += [(f"{path}.levels[{j}].channels", level.channels) for j, level in enumerate(rule.levels)]
        for where, names in ladders:
            for j, name in enumerate(names):
                if name not in channels:
                    problems.append(ConfigProblem(f"{where}[{j}]", f"unknown channel {name!r}; {known_channels}"))
    for i, check in enumerate(config.health.checks):
        for j, name in enumerate(check.depends_on):
            if name not in checks:
                problems.append(ConfigProblem(f"health.checks[{i}].depends_on[{j}]", f"unknown component {name!r}"))
    for section in config.plugins:
        if registries is not None and section not in registries.config:
            problems.append(ConfigProblem(f"plugins.{section}", f"unknown plugin section; "
                                                               f"{registries.config.describe()}"))
    return problems


def _plugin_sections(data: dict[str, Any], walker: Walker, registries: Any) -> None:
    """Validate each `[plugins.<section>]` against the Struct its plugin registered."""
    sections = data.get("plugins")
    if registries is None or not isinstance(sections, dict):
        return
    for name, value in sections.items():
        if name in registries.config:
            sections[name] = walker.convert(value, registries.config.get(name), f"plugins.{name}")


def parse_config(
    data: Mapping[str, Any],
    *,
    registries: Any = None,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
    text: str | None = None,
    checks: Sequence[Check] = (),
) -> Config:
    """Validate plain data into a Config, or raise ConfigError listing every problem."""
    resolved, problems = interpolate(dict(data), environ)
    storage = resolved.get("storage")
    if storage is None or isinstance(storage, dict):
        resolved["storage"] = {"backend": _default_backend(registries), **(storage or {})}
    walker = Walker(registries)
    walker.problems.extend(problems)
    _plugin_sections(resolved, walker, registries)
    config = walker.convert(resolved, Config, "")
    if config is not None:
        walker.problems.extend(_check_references(config, registries))
        for check in checks:
            walker.problems.extend(check(config))
    if walker.problems:
        problems = locate(walker.problems, text)
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.path)), source)
    return config


def read_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    registries: Any = None,
    environ: Mapping[str, str] | None = None,
    checks: Sequence[Check] = (),
) -> Config:
    """Load and validate a config from a path, a dict, `TOCSIN_CONFIG`, or defaults (in that order).

    `registries` (from `tocsin.plugins.build_registries`) lets plugin-owned keys and names be checked;
    without it they are kept as plain data.
    """
    env = os.environ if environ is None else environ
    if source is None and env.get("TOCSIN_CONFIG"):
        source = env["TOCSIN_CONFIG"]
    if source is None:
        return parse_config({}, registries=registries, environ=env, checks=checks)
    if isinstance(source, Mapping):
        return parse_config(source, registries=registries, environ=env, checks=checks)
    path = Path(source)
    data, text = read_file(path)
    is_toml = path.suffix.lower() != ".json"
    return parse_config(data, registries=registries, environ=env, source=str(source),
                            text=text if is_toml else None, checks=checks)
