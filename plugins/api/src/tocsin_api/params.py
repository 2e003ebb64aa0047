"""Query parameters every area shares: times, durations, label matchers, and paging.

Times (`start`, `end`, `since`) are RFC 3339 timestamps (`2026-12-03T10:00:00Z`; no zone means UTC),
integer Unix nanoseconds, or a duration before now (`15m`, `2h`, `7d`). Label matchers are Prometheus
selectors in `match[]` (`job="api"`, `{env=~"prod.*", az!="b"}`). A bad value is a 400 problem naming
the parameter and the reason.
"""

from __future__ import annotations

import datetime as dt
import time

from litestar.exceptions import ValidationException

from tocsin import QueryError
from tocsin.ext import Duration, LabelMatcher, parse_matchers

MAX_LIMIT = 10_000


def bad(name: str, reason: str, source: str = "query") -> ValidationException:
    """A 400 naming parameter (or, with `source="body"`, body field) `name` and why it is wrong."""
    return ValidationException(f"{name}: {reason}", extra=[{"key": name, "message": reason, "source": source}])


def bad_path(name: str, reason: str) -> ValidationException:
    """A 400 naming path parameter `name` and why it is wrong."""
    return bad(name, reason, "path")


def bad_body(name: str, reason: str) -> ValidationException:
    """A 400 naming body field `name` and why it is wrong."""
    return bad(name, reason, "body")


def time_ns(value: str | None, name: str, *, now_ns: int | None = None) -> int | None:
    """A time parameter as Unix nanoseconds (None when absent)."""
    if value is None or value == "":
        return None
    text = value.strip()
    digits = text.removeprefix("-")
    if digits.isascii() and digits.isdigit():  # "³".isdigit() too, which int() refuses
        number = int(text)
        if not -(2**63) <= number < 2**63:
            raise bad(name, "nanoseconds must fit in 64 bits")
        return number
    try:
        seconds = Duration.parse(text)
    except ValueError:
        pass
    else:
        return (time.time_ns() if now_ns is None else now_ns) - round(seconds * 1e9)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad(name, "expected an RFC 3339 time (2026-12-03T10:00:00Z), Unix nanoseconds, or a duration "
                        "before now (15m, 2h, 7d)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return round(when.timestamp() * 1e9)


def time_range(start: str | None, end: str | None, *, default_s: float = 3600.0) -> tuple[int, int]:
    """[start_ns, end_ns) from `start` and `end`: end defaults to now, start to `default_s` before end."""
    now_ns = time.time_ns()
    end_ns = time_ns(end, "end", now_ns=now_ns)
    end_ns = now_ns if end_ns is None else end_ns
    start_ns = time_ns(start, "start", now_ns=now_ns)
    start_ns = end_ns - round(default_s * 1e9) if start_ns is None else start_ns
    if end_ns <= start_ns:
        raise bad("end", "must be after start")
    return start_ns, end_ns


def seconds(value: str | None, name: str) -> float | None:
    """A duration parameter (`250ms`, `30s`, `5m`, or a number of seconds) as seconds."""
    if value is None or value == "":
        return None
    try:
        return float(Duration.parse(float(value) if value.replace(".", "", 1).isdigit() else value))
    except ValueError as error:
        raise bad(name, str(error)) from None


def matchers(values: list[str] | None, name: str = "match[]") -> list[LabelMatcher]:
    """Every `match[]` selector, ANDed, as LabelMatchers."""
    found: list[LabelMatcher] = []
    for value in values or []:
        try:
            found.extend(parse_matchers(value))
        except QueryError as error:
            raise bad(name, str(error)) from None
    return found


def limit(value: int, name: str = "limit") -> int:
    """A page size from 1 to 10,000."""
    if not 1 <= value <= MAX_LIMIT:
        raise bad(name, f"must be from 1 to {MAX_LIMIT:,}, got {value:,}")
    return value
