"""Free-form values in and out of BLOB and TEXT columns: msgpack for `Any` data, JSON for string maps.

msgpack keeps exactly what the memory backend's msgpack round trip keeps (ints stay ints, tuples become
lists), so every backend hands back the same values. Empty containers are stored as NULL: most records
carry no attributes, and a NULL costs one byte.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from tocsin.ext import UnstorableRecord

T = TypeVar("T")

_PACK = msgspec.msgpack.Encoder()
_UNPACK = msgspec.msgpack.Decoder()
_JSON = msgspec.json.Encoder(order="sorted")
_CONTAINERS = (dict, list, tuple)  # a tuple, not `dict | list | tuple`, which builds a new Union at every call


def pack(value: Any, record: str) -> bytes | None:
    """msgpack bytes of a value, or None when it is empty; unstorable values are an UnstorableRecord."""
    if not value:
        return None if isinstance(value, _CONTAINERS) else _pack(value, record)
    return _pack(value, record)


def _pack(value: Any, record: str) -> bytes:
    try:
        return _PACK.encode(value)
    except (TypeError, OverflowError, msgspec.MsgspecError) as error:
        raise UnstorableRecord(f"cannot store {record}: {error}") from None


def unpack_dict(blob: bytes | None) -> dict[str, Any]:
    """A msgpack dict back, `{}` for NULL."""
    return {} if blob is None else _UNPACK.decode(blob)


def unpack_as(blob: bytes | None, kind: type[T], empty: T) -> T:
    """msgpack bytes decoded as `kind`, `empty` for NULL."""
    return empty if blob is None else msgspec.msgpack.decode(blob, type=kind)


def to_json(value: Any) -> str:
    """Canonical JSON text (sorted keys) of strings, lists and maps."""
    return _JSON.encode(value).decode()


def from_json(text: str, kind: type[T] = Any) -> T:  # type: ignore[assignment]
    """JSON text back, typed when `kind` is given."""
    return msgspec.json.decode(text, type=kind)
