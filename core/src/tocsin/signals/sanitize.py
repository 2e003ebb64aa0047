"""Making a record storable, with the same rules for logs, spans, metric labels and workflow records.

Real data holds values no backend column can take: a lone surrogate (what `os.listdir` returns for a file
name that is not UTF-8), an int past 64 bits, nesting a thousand levels deep, an object of some class. The
batch writer (`tocsin.storage.batches`) applies these rules to a batch whose write failed, so the happy path
pays nothing (logs cut deep nesting when they are drained, with the same rule and count):

- a lone surrogate becomes U+FFFD (reason `surrogate`);
- a NUL character becomes U+FFFD (reason `nul`): PostgreSQL's text cannot hold it (SQLite can, and never
  fails a write for one, so there it is only replaced when the batch failed for another value);
- an int outside [-2**63, 2**64 - 1] inside attributes, labels or params becomes its decimal text (`big_int`);
- nesting deeper than `MAX_DEPTH` levels is cut to a placeholder (`nesting`);
- any other value becomes its repr (`repr`);
- a metric rollup's sketch is left as it is: it holds only numbers, its buckets keyed by int (a dict key
  that is not text becomes its repr everywhere else, which turned the buckets into strings that no backend
  could read back, and dropped every rollup of the batch on the memory backend).

Each change is counted by its reason; `tocsin_records_sanitized_total{signal,reason}` shows the counts.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, TypeVar

import msgspec

from tocsin.models import Sketch

MAX_DEPTH = 16
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
NESTED_TOO_DEEP = f"<nested deeper than {MAX_DEPTH} levels>"

T = TypeVar("T")

_SURROGATE = re.compile("[\ud800-\udfff]")
_KEPT = (bool, float, bytes, type(None), Sketch)  # a rollup's sketch holds only numbers, keyed by int bucket


def sanitize(record: T, reasons: Counter[str]) -> T:
    """`record` (a msgspec Struct) with every value made storable; each change is added to `reasons`."""
    return _struct(record, 0, reasons) if isinstance(record, msgspec.Struct) else _value(record, 0, reasons)


def text(value: str, reasons: Counter[str]) -> str:
    """A string with each lone surrogate and each NUL replaced by U+FFFD (counted once per string and reason)."""
    if "\x00" in value:
        reasons["nul"] += 1
        value = value.replace("\x00", "\ufffd")
    if value.isascii() or _SURROGATE.search(value) is None:
        return value
    reasons["surrogate"] += 1
    return _SURROGATE.sub("\ufffd", value)


def _struct(record: Any, depth: int, reasons: Counter[str]) -> Any:
    changes = {}
    for name in record.__struct_fields__:
        value = getattr(record, name)
        # An int field of the Struct itself (a timestamp, a count) keeps its type; only free-form data changes.
        new = value if type(value) is int else _value(value, depth, reasons)
        if new is not value:
            changes[name] = new
    return msgspec.structs.replace(record, **changes) if changes else record


def _value(value: Any, depth: int, reasons: Counter[str]) -> Any:
    if isinstance(value, str):
        return text(value, reasons)
    if isinstance(value, _KEPT):
        return value
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return value
        reasons["big_int"] += 1
        return str(value)
    if isinstance(value, dict | list | tuple | msgspec.Struct):
        if depth >= MAX_DEPTH:
            reasons["nesting"] += 1
            return NESTED_TOO_DEEP
        if isinstance(value, msgspec.Struct):
            return _struct(value, depth + 1, reasons)
        if isinstance(value, dict):
            return {_key(key, reasons): _value(item, depth + 1, reasons) for key, item in value.items()}
        items = [_value(item, depth + 1, reasons) for item in value]
        return items if isinstance(value, list) else tuple(items)
    reasons["repr"] += 1
    return text(_repr(value), reasons)


def _key(key: Any, reasons: Counter[str]) -> str:
    return text(key, reasons) if isinstance(key, str) else text(_repr(key), reasons)


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as error:  # a broken __repr__ must not lose the record
        return f"<unprintable {type(value).__qualname__}: {type(error).__name__}>"
