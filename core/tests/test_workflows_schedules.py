"""Schedules for workflow expectations: "every N" and five-field cron, time zones, and precise errors."""

from __future__ import annotations

import datetime as dt

import pytest

from tocsin.config.schedules import Cron, Every, parse_schedule
from tocsin.errors import ConfigError


def ns(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp()) * 10**9


def iso(time_ns: int, zone: str = "UTC") -> str:
    from zoneinfo import ZoneInfo

    return dt.datetime.fromtimestamp(time_ns / 1e9, ZoneInfo(zone)).isoformat()


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("0 2 * * *", "2024-01-01T01:59:59+00:00", "2024-01-01T02:00:00+00:00"),
    ("0 2 * * *", "2024-01-01T02:00:00+00:00", "2024-01-02T02:00:00+00:00"),  # strictly after
    ("*/15 * * * *", "2024-01-01T02:07:00+00:00", "2024-01-01T02:15:00+00:00"),
    ("5-10/5 * * * *", "2024-01-01T02:06:00+00:00", "2024-01-01T02:10:00+00:00"),
    ("0 9 * * mon-fri", "2024-01-05T10:00:00+00:00", "2024-01-08T09:00:00+00:00"),  # Friday -> Monday
    ("0 0 * * 7", "2024-01-01T00:00:00+00:00", "2024-01-07T00:00:00+00:00"),  # 7 is Sunday too
    ("0 0 1,15 * fri", "2024-01-02T00:00:00+00:00", "2024-01-05T00:00:00+00:00"),  # either day field
    ("0 0 29 feb *", "2024-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
    ("30 4 1 jan,jul *", "2024-02-01T00:00:00+00:00", "2024-07-01T04:30:00+00:00"),
    ("@hourly", "2024-12-31T23:30:00+00:00", "2025-01-01T00:00:00+00:00"),
    ("@weekly", "2024-01-01T00:00:00+00:00", "2024-01-07T00:00:00+00:00"),
    ("@monthly", "2024-01-31T12:00:00+00:00", "2024-02-01T00:00:00+00:00"),
])  # fmt: skip
def test_cron_next_after(expression, after, expected):
    assert iso(parse_schedule(expression).next_after(ns(after))) == expected


def test_cron_follows_the_time_zone_and_its_dst_changes():
    paris = parse_schedule("30 2 * * *", "Europe/Paris")
    assert isinstance(paris, Cron)
    assert iso(paris.next_after(ns("2024-03-29T12:00:00+00:00")), "Europe/Paris") == "2024-03-30T02:30:00+01:00"
    # 02:30 does not exist on the spring-forward day: it fires at 03:30 local, right after the jump
    assert iso(paris.next_after(ns("2024-03-30T12:00:00+00:00")), "Europe/Paris") == "2024-03-31T03:30:00+02:00"
    assert iso(paris.next_after(ns("2024-03-31T12:00:00+00:00")), "Europe/Paris") == "2024-04-01T02:30:00+02:00"


def test_every_counts_from_the_last_run():
    every = parse_schedule("every 90m")
    assert every == Every(5400.0) and parse_schedule("@every 90m") == every
    assert every.next_after(10**9) == 10**9 + 5400 * 10**9


@pytest.mark.parametrize(("text", "error"), [
    ("0 0 30 2 *", "never fires"),
    ("61 * * * *", "minute 61 is outside 0-59"),
    ("* * * *", "must have 5 fields"),
    ("0 0 * * funday", "day of week 'funday' is not a number or a name"),
    ("*/0 * * * *", "minute step '0' must be a whole number >= 1"),
    ("³ * * * *", "minute '³' is not a number"),  # str.isdigit() says yes, int() says no
    ("*/² * * * *", "minute step '²' must be a whole number >= 1"),
    ("10-5 * * * *", "minute range '10-5' runs backwards"),
    ("every", "must be 'every <duration>'"),
    ("every soon", "expected a duration"),
    ("every 0s", "longer than 0s"),
])  # fmt: skip
def test_bad_schedules_say_what_is_wrong(text, error):
    with pytest.raises(ConfigError, match=error):
        parse_schedule(text)


def test_an_unknown_time_zone_is_an_error():
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        parse_schedule("0 0 * * *", "Mars/Olympus")
