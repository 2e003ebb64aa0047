"""Reading tocsin.toml: where the config comes from, and every problem in it reported at once.

Where the config comes from: an explicit path or dict, else the file named by `TOCSIN_CONFIG`, else
nothing at all — which is a working embedded setup (SQLite at ./tocsin.db when tocsin-sqlite is installed,
in-memory storage otherwise). Unknown keys, wrong types, bad durations, unset `${ENV}` variables and
names no plugin registered are all reported together, each with its path (and line, for TOML files).
Cross-section references are checked on the raw data, and the checks that belong to other wings (which come
in as `checks`, so this module imports none of them) run on every section that converted, so one mistake
never hides another.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from tocsin.config.schema import Config
from tocsin.config.source import interpolate, locate, read_file
from tocsin.config.walker import Walker
from tocsin.errors import ConfigError, ConfigProblem

Check = Callable[[Config], list[ConfigProblem]]
"""A check across sections, run once the structure is right; it returns every problem it finds."""
ScopedCheck = tuple[tuple[str, ...], Check]
"""A check and the top-level sections it reads: it also runs when only other sections have problems."""


def _default_backend(registries: Any) -> str:
    """SQLite when tocsin-sqlite is installed (the embedded default), else in-memory storage."""
    return "sqlite" if registries is not None and "sqlite" in registries.storage else "memory"


def _entries(data: Any, *keys: str) -> list[dict[str, Any]]:
    """The tables of a list section in raw data (`data[k1][k2]...`), a non-table kept as {} so indexes stay."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return [item if isinstance(item, dict) else {} for item in data] if isinstance(data, list) else []


def _strings(value: Any) -> list[tuple[int, str]]:
    """The (index, string) items of a raw list; anything else is the structural check's to report."""
    return [(i, item) for i, item in enumerate(value) if isinstance(item, str)] if isinstance(value, list) else []


def _check_references(data: dict[str, Any], registries: Any) -> list[ConfigProblem]:
    """Cross-section checks on the raw data, so they run even when some section has structural problems:
    unique names, and every name a rule or check refers to exists."""
    problems: list[ConfigProblem] = []

    def unique(items: list[dict[str, Any]], path: str) -> set[str]:
        seen: set[str] = set()
        for i, item in enumerate(items):
            name = item.get("name")
            if not isinstance(name, str):
                continue
            if name in seen:
                problems.append(ConfigProblem(f"{path}[{i}].name", f"duplicate name {name!r}"))
            seen.add(name)
        return seen

    rules = _entries(data, "alerting", "rules")
    health_checks = _entries(data, "health", "checks")
    channels = unique(_entries(data, "channels"), "channels")
    checks = unique(health_checks, "health.checks")
    unique(rules, "alerting.rules")
    known_channels = ", ".join(sorted(channels)) or "none configured"
    for i, rule in enumerate(rules):
        path = f"alerting.rules[{i}]"
        op = rule.get("op", "gt")
        if registries is not None and isinstance(op, str) and op not in registries.operators:
            problems.append(ConfigProblem(f"{path}.op", f"unknown {registries.operators.kind} {op!r}; "
                                                        f"{registries.operators.describe()}"))
        ladders = [(f"{path}.channels", rule.get("channels"))]
        ladders += [(f"{path}.levels[{j}].channels", level.get("channels"))
                    for j, level in enumerate(_entries(rule, "levels"))]
        for where, names in ladders:
            for j, name in _strings(names):
                if name not in channels:
                    problems.append(ConfigProblem(f"{where}[{j}]", f"unknown channel {name!r}; {known_channels}"))
    for i, check in enumerate(health_checks):
        for j, name in _strings(check.get("depends_on")):
            if name not in checks:
                problems.append(ConfigProblem(f"health.checks[{i}].depends_on[{j}]", f"unknown component {name!r}"))
    sections = data.get("plugins")
    for section in sections if isinstance(sections, dict) else {}:
        if registries is not None and section not in registries.config:
            close = difflib.get_close_matches(section, registries.config.names(), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(ConfigProblem(f"plugins.{section}", f"unknown plugin section{hint}; "
                                                               f"{registries.config.describe()}"))
    return problems


def _partial_config(data: dict[str, Any], registries: Any) -> tuple[Config | None, set[str]]:
    """A Config of the top-level sections that convert on their own (defaults elsewhere), and the failed ones."""
    converted: dict[str, Any] = {}
    failed: set[str] = set()
    for field in msgspec.structs.fields(Config):
        if field.encode_name not in data:
            continue
        walker = Walker(registries)
        value = walker.convert(data[field.encode_name], field.type, field.encode_name)
        if walker.problems:
            failed.add(field.encode_name)
        else:
            converted[field.name] = value
    try:
        return Config(**converted), failed
    except (TypeError, ValueError):
        return None, failed


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
    checks: Sequence[ScopedCheck] = (),
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
    walker.problems.extend(_check_references(resolved, registries))
    checked, failed = (config, set()) if config is not None else _partial_config(resolved, registries)
    for reads, check in checks:
        if checked is not None and not failed.intersection(reads):
            walker.problems.extend(check(checked))
    if walker.problems:
        problems = locate(walker.problems, text)
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.path)), source)
    return config


def read_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    registries: Any = None,
    environ: Mapping[str, str] | None = None,
    checks: Sequence[ScopedCheck] = (),
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
