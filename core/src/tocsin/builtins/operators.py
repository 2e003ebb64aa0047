"""Built-in alert operators: comparisons against a threshold, and inside/outside a [low, high] range."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from tocsin.hookspecs import hookimpl


def inside(value: float, bounds: Sequence[float]) -> bool:
    """True when low <= value <= high."""
    low, high = bounds
    return low <= value <= high


def outside(value: float, bounds: Sequence[float]) -> bool:
    """True when value < low or value > high."""
    return not inside(value, bounds)


COMPARISONS = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}


@hookimpl
def register_alert_operators(register):
    for name, fn in COMPARISONS.items():
        register(name, fn)
    register("inside", inside)
    register("outside", outside)
