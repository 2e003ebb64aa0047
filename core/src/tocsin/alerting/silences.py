"""Silences: label matchers over a time range that mute notifications (the alert still changes state).

Matchers are written as in Prometheus and Alertmanager, one or several separated by commas, with or
without braces: `alertname="cpu-high", env=~"prod|staging"`, `{route!="/health"}`. A value may be
bare when it has no spaces, commas or quotes (`env=prod`). A silence is *pending* before `starts_ns`,
*active* until `ends_ns`, then *expired*; expired silences stay (for history) until the alerts retention
sweeps them. As in Alertmanager, a silence needs at least one matcher that does not match the empty
string, so it cannot mute every alert by accident.

`until_resolved` silences end on their own: at the first evaluation where something they matched has
resolved since they started and nothing they match is still pending or firing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Literal

from tocsin.alerting.state import ACTIVE_STATES
from tocsin.errors import ConfigError, ConfigProblem, QueryError
from tocsin.models import Alert, LabelMatcher, Silence
from tocsin.storage.matchers import LabelPredicate, compile_matchers

FOREVER_NS = 2**63 - 1
"""`ends_ns` of a silence that only ends when its alerts resolve."""

SilenceState = Literal["pending", "active", "expired"]

_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MATCHER = re.compile(
    r"""\s*(?P<label>[^\s=!~,{}"]+)\s*(?P<op>=~|!~|!=|=)\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s,"{}]*))\s*"""
)


def parse_matchers(text: str) -> list[LabelMatcher]:
    """`a="b", c=~"x.*"` (braces optional) as LabelMatchers, or QueryError naming the part that is wrong."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers: list[LabelMatcher] = []
    position = 0
    while position < len(body):
        match = _MATCHER.match(body, position)
        if match is None:
            raise QueryError(f"cannot read a label matcher at {body[position:position + 30]!r} in {text!r}; "
                             'write label="value", with =, !=, =~ or !~')
        label = match.group("label")
        if not _LABEL.fullmatch(label):
            raise QueryError(f"label matcher {match.group(0).strip()!r}: {label!r} is not a label name "
                             "([a-zA-Z_][a-zA-Z0-9_]*)")
        quoted = match.group("quoted")
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group("bare")
        matchers.append(LabelMatcher(label=label, op=match.group("op"), value=value))  # type: ignore[arg-type]
        position = match.end()
        if position < len(body):
            if body[position] != ",":
                raise QueryError(f"expected ',' between label matchers at {body[position:position + 30]!r} "
                                 f"in {text!r}")
            position += 1
    if not matchers:
        raise QueryError(f"no label matcher in {text!r}")
    compile_matchers(matchers)  # raises QueryError on a bad regex
    return matchers


def format_matchers(matchers: Iterable[LabelMatcher]) -> str:
    """LabelMatchers back in the text form `parse_matchers` reads."""
    return ", ".join(f'{m.label}{m.op}"{m.value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for m in matchers)


def as_matchers(matchers: str | Sequence[LabelMatcher | str]) -> list[LabelMatcher]:
    """Matchers given as text, as LabelMatchers, or as a list mixing both."""
    if isinstance(matchers, str):
        return parse_matchers(matchers)
    result: list[LabelMatcher] = []
    for matcher in matchers:
        result.extend(parse_matchers(matcher) if isinstance(matcher, str) else [matcher])
    return result


def new_silence(
    matchers: str | Sequence[LabelMatcher | str],
    *,
    created_by: str,
    now_ns: int,
    starts_ns: int | None = None,
    ends_ns: int | None = None,
    comment: str = "",
    until_resolved: bool = False,
) -> Silence:
    """A validated silence with a fresh id; ConfigError lists everything wrong with it."""
    parsed = as_matchers(matchers)
    starts = now_ns if starts_ns is None else starts_ns
    ends = FOREVER_NS if ends_ns is None and until_resolved else ends_ns
    problems = []
    if not created_by.strip():
        problems.append(ConfigProblem("silence.created_by", "say who creates the silence"))
    if ends is None:
        problems.append(ConfigProblem("silence.ends_ns", "a silence needs an end (or until_resolved)"))
    elif ends <= starts:
        problems.append(ConfigProblem("silence.ends_ns", f"ends ({ends}) must be after starts ({starts})"))
    elif ends <= now_ns:
        problems.append(ConfigProblem("silence.ends_ns", f"ends ({ends}) is already in the past"))
    if all(compile_matchers([matcher])({}) for matcher in parsed):
        problems.append(ConfigProblem("silence.matchers", f"{format_matchers(parsed)!r} matches every alert; "
                                                          "add a matcher that does not match the empty string"))
    if problems:
        raise ConfigError(problems)
    return Silence(id=uuid.uuid4().hex, matchers=parsed, starts_ns=starts, ends_ns=ends or FOREVER_NS,
                   created_by=created_by, comment=comment, until_resolved=until_resolved, created_ns=now_ns)


def silence_state(silence: Silence, now_ns: int) -> SilenceState:
    """pending before it starts, active until it ends, then expired."""
    if now_ns < silence.starts_ns:
        return "pending"
    return "active" if now_ns < silence.ends_ns else "expired"


class SilenceIndex:
    """The silences active at one time, matched against alert labels (built once per evaluation)."""

    def __init__(self, silences: Iterable[Silence], now_ns: int) -> None:
        self.active: list[tuple[Silence, LabelPredicate]] = [
            (silence, compile_matchers(silence.matchers))
            for silence in silences
            if silence_state(silence, now_ns) == "active"
        ]

    def matching(self, labels: dict[str, str]) -> list[str]:
        """Ids of the active silences that cover an alert with these labels."""
        return [silence.id for silence, matches in self.active if matches(labels)]

    def ended_by_resolve(self, alerts: Iterable[Alert]) -> list[Silence]:
        """The active `until_resolved` silences that should end now, given the alerts just evaluated.

        One ends when an alert it covers resolved (or went inactive) since it started, and no alert it
        covers is still pending or firing.
        """
        alerts = list(alerts)
        ended = []
        for silence, matches in self.active:
            if not silence.until_resolved:
                continue
            covered = [alert for alert in alerts if matches(alert.labels)]
            resolved = any(alert.state not in ACTIVE_STATES and (alert.resolved_at_ns or alert.updated_ns)
                           >= silence.starts_ns for alert in covered)
            if resolved and not any(alert.state in ACTIVE_STATES for alert in covered):
                ended.append(silence)
        return ended
