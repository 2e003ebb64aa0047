"""The rules a metric name, a label name and a recorded value must follow.

Names follow Prometheus: metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names match
`[a-zA-Z_][a-zA-Z0-9_]*` and must not start with `__` (reserved). Recorded values are finite real
numbers; bool is refused even though it is an int, because `inc(True)` is almost always a bug.
Every check raises InstrumentError naming the metric, the offending thing and the rule.
"""

from __future__ import annotations

import math
import numbers
import re
import sys

from tocsin.errors import InstrumentError

METRIC_NAME_RULE = "[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME_RULE = "[a-zA-Z_][a-zA-Z0-9_]* and not start with '__'"

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MAX = sys.float_info.max


def check_metric_name(name: object) -> str:
    """Return `name` if it is a valid metric name, else raise InstrumentError quoting the rule."""
    if not isinstance(name, str) or _METRIC_NAME.fullmatch(name) is None:
        raise InstrumentError(f"invalid metric name {name!r}: a metric name must match {METRIC_NAME_RULE}")
    return name


def check_label_name(metric: str, label: object) -> str:
    """Return `label` if it is a valid label name on `metric`, else raise InstrumentError quoting the rule."""
    if not isinstance(label, str) or _LABEL_NAME.fullmatch(label) is None or label.startswith("__"):
        raise InstrumentError(
            f"invalid label name {label!r} on metric {metric!r}: a label name must match {LABEL_NAME_RULE}"
        )
    return label


def finite_number(metric: str, value: object) -> float:
    """`value` as an int or float to record, or InstrumentError if it is not a finite real number.

    Recording hot paths accept exact int and finite float inline and call this only for anything else,
    so subclasses and foreign number types (numpy scalars, Fraction) are converted here.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InstrumentError(
            f"metric {metric!r}: a recorded value must be an int or float, got {type(value).__name__}"
        )
    try:
        number = int(value) if isinstance(value, numbers.Integral) else float(value)
    except OverflowError:  # a Fraction or Decimal beyond float range
        number = math.inf
    if not -_MAX <= number <= _MAX:  # also false for nan
        raise InstrumentError(
            f"metric {metric!r}: a recorded value must be finite and within float range, got {number!r:.40}"
        )
    return number


def counter_increment(metric: str, value: object) -> float:
    """`value` as a counter increment, or InstrumentError unless it is a finite number >= 0."""
    if (value.__class__ is float or value.__class__ is int) and 0 <= value <= _MAX:
        return value  # type: ignore[return-value]  # checked just above
    number = finite_number(metric, value)
    if number < 0:
        raise InstrumentError(f"counter {metric!r}: an increment must be >= 0, got {number!r}")
    return number
