"""When a scheduled workflow should run: "every 15m", or a five-field cron expression in a time zone.

A schedule answers one question, `next_after(time_ns)`: the first time strictly after `time_ns` at which a
run is expected. "every N" counts from the last run (healthchecks.io's "period"); a cron expression names
wall-clock minutes in its time zone (UTC unless told). Cron follows Vixie cron: fields are minute (0-59),
hour (0-23), day of month (1-31), month (1-12 or jan-dec) and day of week (0-7 or sun-sat, 0 and 7 are
Sunday), each `*`, a value, a range `a-b`, a step `*/n` or `a-b/n`, or a comma list of those; when both day
fields are restricted a day matching either one fires. `@hourly`, `@daily` (`@midnight`), `@weekly`,
`@monthly` and `@yearly` (`@annually`) are the usual shorthands, and `@every 15m` means "every 15m".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tocsin.errors import ConfigError
from tocsin.values import Duration

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_FIELDS = (  # name, low, high, names
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)
_SEARCH_DAYS = 366 * 9  # a valid expression fires within 8 years (Feb 29 in a leap year, at worst)
_MINUTE = dt.timedelta(minutes=1)


class Schedule(Protocol):
    """Something that knows when the next run is due."""

    def next_after(self, time_ns: int) -> int:
        """The first expected run time strictly after `time_ns` (ns since the epoch)."""


@dataclass(frozen=True)
class Every:
    """A run is expected `period_s` after the previous one."""

    period_s: float

    def next_after(self, time_ns: int) -> int:
        """`time_ns` plus the period."""
        return time_ns + round(self.period_s * 1e9)


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression evaluated in a time zone."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is `*`
    any_weekday: bool  # day of week is `*`
    zone: ZoneInfo

    def _day_matches(self, day: dt.datetime) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def next_after(self, time_ns: int) -> int:
        """The first matching wall-clock minute after `time_ns`, as ns since the epoch."""
        start = dt.datetime.fromtimestamp(time_ns // 1_000_000_000, self.zone).replace(tzinfo=None)
        wall = start.replace(second=0, microsecond=0) + _MINUTE
        limit = wall + dt.timedelta(days=_SEARCH_DAYS)
        while wall < limit:
            if wall.month not in self.months:
                year, month = divmod(wall.month, 12)
                wall = dt.datetime(wall.year + year, month + 1, 1)
            elif not self._day_matches(wall):
                wall = dt.datetime(wall.year, wall.month, wall.day) + dt.timedelta(days=1)
            elif wall.hour not in self.hours:
                wall = wall.replace(minute=0) + dt.timedelta(hours=1)
            elif wall.minute not in self.minutes:
                wall += _MINUTE
            else:
                fired = int(wall.replace(tzinfo=self.zone).timestamp()) * 1_000_000_000
                if fired > time_ns:  # a wall time skipped by a DST change can map to the past
                    return fired
                wall += _MINUTE
        raise ConfigError(f"cron schedule {self.expression!r} never fires")


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    """The values one cron field allows."""

    def number(token: str) -> int:
        value = names.get(token.lower()) if names else None
        if value is None:
            if not (token.isascii() and token.isdigit()):
                raise ConfigError(f"{name} {token!r} is not a number{' or a name' if names else ''}")
            value = int(token)
        if not low <= value <= high:
            raise ConfigError(f"{name} {value} is outside {low}-{high}")
        return value

    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) < 1:
                raise ConfigError(f"{name} step {step_text!r} must be a whole number >= 1")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first, last = number(first_text), number(last_text)
            if first > last:
                raise ConfigError(f"{name} range {span!r} runs backwards")
        else:
            first = number(span)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse_cron(expression: str, timezone: str = "UTC") -> Cron:
    """Parse a five-field cron expression (or an @-shorthand); ConfigError names the field and the rule."""
    text = _MACROS.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) != 5:
        raise ConfigError(
            f"cron schedule {expression!r} must have 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}"
        )
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {timezone!r}; use an IANA name like 'UTC' or 'Europe/Paris'") from None
    try:
        minutes, hours, days, months, weekdays = (
            _field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)
        )
    except ConfigError as error:
        raise ConfigError(f"cron schedule {expression!r}: {error}") from None
    cron = Cron(
        expression=expression,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(day % 7 for day in weekdays),
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
        zone=zone,
    )
    cron.next_after(0)  # raises when the expression can never fire (say, 30 February)
    return cron


def parse_schedule(text: str, timezone: str = "UTC") -> Every | Cron:
    """A schedule from config: "every 15m" / "@every 15m", an @-shorthand, or a cron expression."""
    words = text.strip().split()
    if words and words[0].lower() in ("every", "@every"):
        if len(words) != 2:
            raise ConfigError(f"schedule {text!r} must be 'every <duration>', like 'every 15m'")
        try:
            period = Duration.parse(words[1])
        except ValueError as error:
            raise ConfigError(f"schedule {text!r}: {error}") from None
        if period <= 0:
            raise ConfigError(f"schedule {text!r}: the period must be longer than 0s")
        return Every(float(period))
    return parse_cron(text, timezone)
