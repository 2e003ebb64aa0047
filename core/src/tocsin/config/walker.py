"""Convert plain data (from TOML, JSON or a dict) into msgspec Structs, collecting every problem with its path.

msgspec stops at the first error and prints dict keys as `[...]`; a config user wants every mistake at once,
each located like `channels[1].min_severity`. This walker follows the Struct annotations itself, asks
msgspec only about leaf values, and lets "open" Structs hand their extra keys to a plugin's own Config.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

from tocsin.errors import ConfigProblem
from tocsin.values import BufferSize, Duration, Secret

_UNRESOLVED = object()
_PHRASES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean"}


class Walker:
    """One conversion run: the problems found so far, and the registries that own plugin keys.

    A Struct with `__tocsin_plugin__ = (registry_attribute, key)` is "open": the entry named by its `key`
    field (a channel `type`, a storage `backend`) supplies a Config Struct for every other key, and the
    converted result lands in the Struct's `options` field.
    """

    def __init__(self, registries: Any = None) -> None:
        self.problems: list[ConfigProblem] = []
        self.registries = registries

    def problem(self, path: str, message: str) -> None:
        """Record one problem."""
        self.problems.append(ConfigProblem(path, message))

    def convert(self, value: Any, annotation: Any, path: str) -> Any:
        """Convert `value` to `annotation`, recording problems under `path`; returns None where it failed."""
        origin = get_origin(annotation)
        if annotation is Any:
            return value
        if origin is Annotated:
            base = get_args(annotation)[0]
            if _is_struct(base) or get_origin(base) in (list, dict, Union, types.UnionType):
                return self.convert(value, base, path)
            return self._leaf(value, annotation, path)
        if _is_struct(annotation):
            return self._struct(value, annotation, path)
        if annotation is Duration:
            return self._parse(Duration.parse, value, path)
        if annotation is BufferSize:
            return self._parse(BufferSize.parse, value, path)
        if annotation is Secret:
            if not isinstance(value, str):  # never echo what was meant to be a secret
                self.problem(path, f"expected a string (a secret), got {type(value).__name__}")
                return None
            return Secret(value)
        if origin is Literal:
            allowed = get_args(annotation)
            if value not in allowed:
                choices = "|".join(str(choice) for choice in allowed)
                self.problem(path, f"expected one of {choices}, got {value!r}")
                return None
            return value
        if origin in (Union, types.UnionType):
            return self._union(value, get_args(annotation), path)
        if origin in (list, tuple):
            return self._list(value, annotation, path)
        if origin is dict:
            return self._dict(value, get_args(annotation)[1], path)
        return self._leaf(value, annotation, path)

    def _plugin_config(self, struct: type, value: dict[str, Any], path: str) -> Any:
        spec = getattr(struct, "__tocsin_plugin__", None)
        if spec is None:
            return None
        if self.registries is None:
            return dict[str, Any]
        attribute, key = spec
        registry = getattr(self.registries, attribute)
        name = value.get(key)
        if not isinstance(name, str):
            return _UNRESOLVED
        if name not in registry:
            self.problem(_join(path, key), registry.unknown(name))
            return _UNRESOLVED
        return registry.get(name).Config

    def _parse(self, parse: Callable[[Any], Any], value: Any, path: str) -> Any:
        try:
            return parse(value)
        except ValueError as error:
            self.problem(path, str(error))
            return None

    def _leaf(self, value: Any, annotation: Any, path: str) -> Any:
        try:
            return msgspec.convert(value, annotation, strict=True)
        except msgspec.ValidationError as error:
            message = str(error).split(" - at ")[0].split(", got")[0]
            for name, phrase in _PHRASES.items():
                message = message.replace(f"`{name}`", phrase)
            message = message.replace("`", "").replace("Expected", "expected", 1)
            self.problem(path, f"{message}, got {_kind(value)}")
            return None

    def _union(self, value: Any, members: tuple[Any, ...], path: str) -> Any:
        if value is None and type(None) in members:
            return None
        candidates = [member for member in members if member is not type(None)]
        first_problems: list[ConfigProblem] | None = None
        for member in candidates:
            trial = Walker(self.registries)
            result = trial.convert(value, member, path)
            if not trial.problems:
                return result
            if first_problems is None or len(trial.problems) < len(first_problems):
                first_problems = trial.problems
        if len(candidates) == 1 or _is_struct(candidates[0]):
            self.problems.extend(first_problems or [])
        else:
            names = " or ".join(_type_name(member) for member in candidates)
            self.problem(path, f"expected {names}, got {_kind(value)}")
        return None

    def _list(self, value: Any, annotation: Any, path: str) -> Any:
        if not isinstance(value, list | tuple):
            self.problem(path, f"expected a list, got {_kind(value)}")
            return None
        args = get_args(annotation)
        if get_origin(annotation) is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                self.problem(path, f"expected a list of {len(args)} items, got {len(value)}")
                return None
            pairs = enumerate(zip(value, args, strict=True))
            return tuple(self.convert(item, arg, f"{path}[{i}]") for i, (item, arg) in pairs)
        item_type = args[0] if args else Any
        items = [self.convert(item, item_type, f"{path}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if get_origin(annotation) is tuple else items

    def _dict(self, value: Any, value_type: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.problem(path, f"expected a table, got {_kind(value)}")
            return None
        return {str(key): self.convert(item, value_type, _join(path, str(key))) for key, item in value.items()}

    def _struct(self, value: Any, struct: type[msgspec.Struct], path: str) -> Any:
        if isinstance(value, struct):
            return value
        if not isinstance(value, dict):
            self.problem(path, f"expected a table, got {_kind(value)}")
            return None
        fields = {field.encode_name: field for field in msgspec.structs.fields(struct)}
        extra = {key: item for key, item in value.items() if key not in fields}
        options_type = self._plugin_config(struct, value, path)
        if extra and options_type is None:
            for key in extra:
                self.problem(_join(path, key), f"unknown key{_suggest(key, fields)}")
        before = len(self.problems)
        kwargs: dict[str, Any] = {}
        for encode_name, field in fields.items():
            if encode_name in value:
                kwargs[field.name] = self.convert(value[encode_name], field.type, _join(path, encode_name))
            elif field.required:
                self.problem(_join(path, encode_name), "missing required key")
        if options_type is not None and options_type is not _UNRESOLVED:
            if _is_struct(options_type):  # a typo of either the section's own keys or the plugin's is suggested
                own = {name: field for name, field in fields.items() if name != "options"}
                known = {**own, **{field.encode_name: field for field in msgspec.structs.fields(options_type)}}
                for key in [key for key in extra if key not in known]:
                    self.problem(_join(path, key), f"unknown key{_suggest(key, known)}")
                    del extra[key]
            kwargs["options"] = self.convert(extra, options_type, path)
        if len(self.problems) > before:
            return None
        try:
            return struct(**kwargs)
        except (TypeError, ValueError) as error:
            self.problem(path, str(error))
            return None


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _suggest(key: str, known: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Annotated:
        return _type_name(get_args(annotation)[0])
    if get_origin(annotation) in (list, tuple):
        return "a list"
    if get_origin(annotation) is dict or _is_struct(annotation):
        return "a table"
    names = {Duration: "a duration", BufferSize: "a size", float: "a number", int: "an integer", str: "a string",
             bool: "a boolean"}
    return names.get(annotation) or getattr(annotation, "__name__", str(annotation))


def _kind(value: Any) -> str:
    names = {dict: "a table", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "nothing"}
    name = names.get(type(value), type(value).__name__)
    return f"{name} {value!r}" if isinstance(value, str | int | float) and not isinstance(value, bool) else name
