"""Reading a config file: TOML or JSON, `${NAME}` substitution, and finding the line a key path is on."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tocsin.errors import ConfigError, ConfigProblem

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigFileMissing(ConfigError):
    """The config file named (by `--config`, an argument or `TOCSIN_CONFIG`) does not exist: a usage error."""

    exit_code = 2


def read_file(path: Path) -> tuple[dict[str, Any], str]:
    """Parse a TOML or JSON file (chosen by suffix) into plain data; returns (data, text)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileMissing("no such file", source) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read: {error}", source) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError([ConfigProblem("", f"invalid JSON: {error.msg}", error.lineno)], source) from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            found = re.search(r"at line (\d+)", str(error))
            line = int(found.group(1)) if found else max(1, len(text.splitlines()))
            raise ConfigError([ConfigProblem("", f"invalid TOML: {error}", line)], source) from None
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a table (an object in JSON)", source)
    return data, text


def interpolate(data: Any, environ: Mapping[str, str] | None = None, path: str = "") -> tuple[Any, list[ConfigProblem]]:
    """Replace `${NAME}` and `${NAME:-default}` in every string; `$$` is a literal `$`.

    An unset variable without a default is a problem naming the variable and where it is used.
    """
    env = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, str):
            return substitute(value, where)
        if isinstance(value, dict):
            return {key: walk(item, f"{where}.{key}" if where else str(key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return value

    def substitute(text: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(ConfigProblem(where, f"environment variable {name} is not set"))
            return ""

        return _ENV.sub(replace, text) if "$" in text else text

    return walk(data, path), problems


_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\-" ]+?)\s*=""")


def _toml_key(raw: str) -> list[str]:
    return [part.strip().strip("\"'") for part in raw.split(".")]


def _render(parts: list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def toml_lines(text: str) -> dict[str, int]:
    """Map each key path (like `channels[1].min_severity`) to the line it is defined on.

    A best-effort scan of table headers and `key = value` lines, good enough to point at a mistake.
    """
    lines: dict[str, int] = {}
    table: list[str | int] = []
    counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _TABLE.match(line)
        if header:
            parts: list[str | int] = list(_toml_key(header.group(2)))
            if header.group(1) == "[[":
                name = _render(parts)
                counts[name] = counts.get(name, -1) + 1
                parts.append(counts[name])
            else:
                parts = _resolve_arrays(parts, counts)
            table = parts
            lines.setdefault(_render(table), number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault(_render([*table, *_toml_key(key.group(1))]), number)
    return lines


def _resolve_arrays(parts: list[str | int], counts: dict[str, int]) -> list[str | int]:
    """`[alerting.rules.labels]` after `[[alerting.rules]]` belongs to the latest rule."""
    resolved: list[str | int] = []
    for part in parts:
        resolved.append(part)
        name = _render(resolved)
        if name in counts:
            resolved.append(counts[name])
    return resolved


def locate(problems: list[ConfigProblem], text: str | None) -> list[ConfigProblem]:
    """Fill in the line of each problem from the file's text (the nearest enclosing key that has one)."""
    if not text:
        return problems
    lines = toml_lines(text)
    located = []
    for problem in problems:
        line = problem.line
        path = problem.path
        while line is None and path:
            line = lines.get(path)
            path = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        located.append(ConfigProblem(problem.path, problem.message, line))
    return located
