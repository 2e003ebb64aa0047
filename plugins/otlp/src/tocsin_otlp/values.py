"""OTLP `AnyValue`s and attribute lists as tocsin attribute values, from protobuf messages or OTLP/JSON Structs.

Both kinds of message offer `WhichOneof("value")` and the same field names, so one walk serves both.
Scalars stay as they are, bytes become base64 text (as OTLP/JSON writes them), arrays become lists, and a
key-value list is flattened into dotted keys (`http` = {`method`: "GET"} becomes `http.method` = "GET").
Nesting deeper than `MAX_DEPTH` levels is cut to a placeholder, so no record carries a tower of dicts.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import msgspec

MAX_DEPTH = 8
TOO_DEEP = f"<nested deeper than {MAX_DEPTH} levels>"
_SCALARS = frozenset(("string_value", "bool_value", "int_value", "double_value"))


def value_of(value: Any, depth: int = 0) -> Any:
    """One AnyValue as a plain value: scalar, base64 text, list, or (for a key-value list) a dict."""
    kind = value.WhichOneof("value")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind is None:
        return None
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    if kind == "array_value":
        return [value_of(item, depth + 1) for item in value.array_value.values]
    found: dict[str, Any] = {}
    flatten(value.kvlist_value.values, found, "", depth + 1)
    return found


def flatten(pairs: Iterable[Any], into: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Add each KeyValue of `pairs` to `into` under `prefix + key`, key-value lists flattened into dotted keys."""
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        if kind in _SCALARS:
            into[prefix + pair.key] = getattr(value, kind)
        elif kind == "kvlist_value":
            if depth >= MAX_DEPTH:
                into[prefix + pair.key] = TOO_DEEP
            else:
                flatten(value.kvlist_value.values, into, f"{prefix}{pair.key}.", depth + 1)
        else:
            into[prefix + pair.key] = value_of(value, depth)
    return into


def text_of(value: Any) -> str:
    """An AnyValue as message text: a string as is, anything else as compact JSON (empty: "")."""
    if value.WhichOneof("value") == "string_value":
        return value.string_value
    plain = value_of(value)
    return "" if plain is None else msgspec.json.encode(plain).decode("utf-8")


def label_value(value: Any) -> str:
    """An attribute value as a metric label value: strings as is, booleans lowercase, the rest as JSON."""
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode("utf-8")
