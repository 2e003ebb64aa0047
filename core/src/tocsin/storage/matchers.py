"""Label matchers (`=`, `!=`, `=~`, `!~`) compiled once into a predicate over a label dict.

Prometheus semantics: regexes must match the whole value (`re.fullmatch`), and a label that is absent
matches as the empty string, so `{env!=""}` keeps only series that have `env`. Every storage backend that
filters in Python (metrics, alerts, silences) uses this module, so they all agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from tocsin.errors import QueryError
from tocsin.models import LabelMatcher

LabelPredicate = Callable[[Mapping[str, str]], bool]


def _compile_one(matcher: LabelMatcher) -> LabelPredicate:
    label, value = matcher.label, matcher.value
    if matcher.op == "=":
        return lambda labels: labels.get(label, "") == value
    if matcher.op == "!=":
        return lambda labels: labels.get(label, "") != value
    if matcher.op not in ("=~", "!~"):
        raise QueryError(
            f"label matcher on {label!r} has unknown operator {matcher.op!r}; use =, !=, =~ or !~"
        )
    try:
        pattern = re.compile(value)
    except re.error as error:
        raise QueryError(f"label matcher on {label!r} has an invalid regex {value!r}: {error}") from None
    if matcher.op == "=~":
        return lambda labels: pattern.fullmatch(labels.get(label, "")) is not None
    return lambda labels: pattern.fullmatch(labels.get(label, "")) is None


def compile_matchers(matchers: Sequence[LabelMatcher]) -> LabelPredicate:
    """A predicate that holds for a label dict when every matcher holds (no matchers: always true)."""
    predicates = [_compile_one(matcher) for matcher in matchers]
    return lambda labels: all(predicate(labels) for predicate in predicates)
