"""Shared query parameters: times in three forms, durations, label matchers, limits; bad ones name the field."""

from __future__ import annotations

import pytest
from litestar.exceptions import ValidationException
from tocsin_api import params

NOW = 1_764_756_000 * 10**9  # 2025-12-03T10:00:00Z


@pytest.mark.parametrize(("text", "expected"), [
    ("1764756000000000000", NOW),
    ("2025-12-03T10:00:00Z", NOW),
    ("2025-12-03T11:00:00+01:00", NOW),
    ("2025-12-03T10:00:00", NOW),
    ("15m", NOW - 15 * 60 * 10**9),
    (None, None),
])
def test_times_come_as_rfc3339_nanoseconds_or_a_duration_before_now(text, expected):
    assert params.time_ns(text, "start", now_ns=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2025-13-03T10:00:00Z", str(2**64), "-5m", "0³", "³²", "--5"])
def test_a_bad_time_names_the_parameter(text):
    with pytest.raises(ValidationException) as caught:
        params.time_ns(text, "start", now_ns=NOW)
    assert caught.value.extra[0]["key"] == "start"


def test_matchers_are_prometheus_selectors_anded_and_bad_ones_name_the_parameter():
    found = params.matchers(['{job="api", env=~"prod.*"}', 'az!="b"'])
    assert [(m.label, m.op, m.value) for m in found] == [("job", "=", "api"), ("env", "=~", "prod.*"),
                                                         ("az", "!=", "b")]
    with pytest.raises(ValidationException) as caught:
        params.matchers(["job"])
    assert caught.value.extra[0]["key"] == "match[]"


def test_limits_and_durations():
    assert params.limit(10_000) == 10_000
    with pytest.raises(ValidationException):
        params.limit(0)
    assert params.seconds("5m", "step") == 300.0 and params.seconds("2.5", "step") == 2.5
    with pytest.raises(ValidationException):
        params.seconds("soon", "step")
