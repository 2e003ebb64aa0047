"""Value types used in config: durations written as "30s" or "5m", and secrets that never print."""

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
    """msgspec encoder hook: durations as seconds, secrets as `<secret>`."""
    if isinstance(value, Secret):
        return "<secret>"
    if isinstance(value, Duration):
        return float(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")
