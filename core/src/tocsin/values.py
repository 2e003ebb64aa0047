"""Value types used in config: durations written as "30s" or "5m", buffer sizes as "64MiB", and secrets that
never print."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class Duration(float):
    """A non-negative number of seconds, written in config as a number or as "250ms", "30s", "5m", "1h", "30d"."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> Duration:
        """Read a duration from a config value; ValueError says what is accepted."""
        if isinstance(value, bool):
            raise ValueError(f"expected a duration like '30s', '5m', '1h', got {value!r}")
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (match := _DURATION.match(value)):
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
        else:
            raise ValueError(
                f"expected a duration like '250ms', '30s', '5m', '1h' or '30d', got {value!r}"
            )
        if seconds < 0 or seconds != seconds:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return cls(seconds)

    def __repr__(self) -> str:
        return f"Duration({float(self)!r})"


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)\s*$")
_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


class BufferSize(str):
    """How much an in-memory buffer may hold: a memory size ("64MiB", "512KiB") or, written as a plain
    integer, a number of records (the older form); `bytes` or `records` is set, the other is None."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> BufferSize:
        """Read a buffer size from a config value; ValueError says what is accepted."""
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if isinstance(text, str):
            size = cls(text.strip())
            if (size.bytes or size.records or 0) >= 1:
                return size
        raise ValueError(f"expected a size like '64MiB' or '512KiB' (or a number of records), got {value!r}")

    @property
    def bytes(self) -> int | None:
        """The size in bytes, or None when the size is a number of records."""
        match = _SIZE.match(self)
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)]) if match else None

    @property
    def records(self) -> int | None:
        """The number of records, or None when the size is in bytes."""
        return int(self) if self.isascii() and self.isdigit() else None


class Secret:
    """A string that prints as `<secret>` in reprs, errors, logs and encoded output; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"expected a string for a secret, got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def enc_hook(value: object) -> object:
    """msgspec encoder hook: durations as seconds, buffer sizes as written, secrets as `<secret>`."""
    if isinstance(value, Secret):
        return "<secret>"
    if isinstance(value, Duration):
        return float(value)
    if isinstance(value, BufferSize):
        return str.__str__(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")
