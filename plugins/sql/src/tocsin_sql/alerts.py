"""Alerts with their transitions, and silences.

An alert is upserted by fingerprint together with its new transitions and outbox deliveries in the
caller's transaction, so a state change and the notification it causes are stored or lost together (the
outbox of RELIABILITY.md section 1.3). Label matchers are applied in Python with `tocsin.storage.matchers`, the
same code every backend uses; alerts are few (rules times label sets), so a listing reads the candidates
its SQL filters leave and pages them in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tocsin.ext import Alert, AlertQuery, AlertTransition, LabelMatcher, LabelPredicate, Page, Silence
from tocsin_sql import codec, paging
from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.schema import alert_transitions, alerts, silences

_JSON_FIELDS = {"labels", "annotations", "silenced_by", "inhibited_by"}
ALERT_COLUMNS = tuple(alerts.c)
TRANSITION_COLUMNS = tuple(column for column in alert_transitions.c if column.key != "id")
SILENCE_COLUMNS = tuple(silences.c)
SWEPT_STATES = ("resolved", "inactive")
"""Alert states a retention sweep may delete; every other state is something still going on."""


def encode_alert(alert: Alert) -> tuple[Any, ...]:
    """An alert as a row (ALERT_COLUMNS order)."""
    return tuple(
        codec.to_json(getattr(alert, column.key)) if column.key in _JSON_FIELDS else getattr(alert, column.key)
        for column in ALERT_COLUMNS
    )


def decode_alert(row: Sequence[Any]) -> Alert:
    """A stored row back as an Alert."""
    fields = {column.key: value for column, value in zip(ALERT_COLUMNS, row, strict=True)}
    for name in _JSON_FIELDS:
        fields[name] = codec.from_json(fields[name])
    fields["flapping"] = bool(fields["flapping"])
    return Alert(**fields)


def encode_transition(transition: AlertTransition) -> tuple[Any, ...]:
    """A transition as a row (TRANSITION_COLUMNS order)."""
    return tuple(getattr(transition, column.key) for column in TRANSITION_COLUMNS)


def _decode_transition(row: Sequence[Any]) -> AlertTransition:
    return AlertTransition(**{column.key: value for column, value in zip(TRANSITION_COLUMNS, row, strict=True)})


def _upsert_alert(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(alerts)
    replaced = {column.key: insert.excluded[column.key] for column in ALERT_COLUMNS if column.key != "fingerprint"}
    return insert.on_conflict_do_update(index_elements=[alerts.c.fingerprint], set_=replaced)


def _insert_transition(_: Dialect) -> sa.Insert:
    return sa.insert(alert_transitions).values({c.key: sa.bindparam(c.key) for c in TRANSITION_COLUMNS})


def save_alert(db: Database, alert: tuple[Any, ...], transitions: list[tuple[Any, ...]]) -> None:
    """Upsert an encoded alert and append its encoded transitions (inside the caller's transaction)."""
    db.run(db.sql(_upsert_alert), alert)
    if transitions:
        db.run_many(db.sql(_insert_transition), transitions)


def _get(_: Dialect) -> sa.Select:
    return sa.select(*ALERT_COLUMNS).where(alerts.c.fingerprint == sa.bindparam("fingerprint"))


def get_alert(db: Database, fingerprint: str) -> Alert | None:
    """One alert by fingerprint."""
    row = db.fetch_one(db.sql(_get), {"fingerprint": fingerprint})
    return None if row is None else decode_alert(row)


def _list(_: Dialect, states: int, rule: bool, severity: bool) -> sa.Select:
    a = alerts.c
    where = [a.state.in_([sa.bindparam(f"state_{i}") for i in range(states)])] if states else []
    if rule:
        where.append(a.rule == sa.bindparam("rule"))
    if severity:
        where.append(a.severity == sa.bindparam("severity"))
    return sa.select(*ALERT_COLUMNS).where(*where).order_by(a.updated_ns.desc(), a.fingerprint.desc())


def list_alerts(db: Database, query: AlertQuery, matches: LabelPredicate) -> Page[Alert]:
    """Alerts passing every filter (`states`: any of them), most recently updated first."""
    paging.check_limit(query.limit)
    after = paging.cursor_key(query.cursor, tuple[int, str])
    states = sorted(set(query.states))
    params: dict[str, Any] = {f"state_{i}": state for i, state in enumerate(states)}
    params.update(rule=query.rule, severity=query.severity)
    statement = db.sql(_list, len(states), query.rule is not None, query.severity is not None)
    matched = [alert for alert in map(decode_alert, db.fetch(statement, params)) if matches(alert.labels)]
    if after:
        bound = (after["after_0"], after["after_1"])
        remaining = [alert for alert in matched if (alert.updated_ns, alert.fingerprint) < bound]
    else:
        remaining = matched
    return paging.page(remaining[: query.limit + 1], query.limit, lambda a: (a.updated_ns, a.fingerprint),
                       len(matched))


def _history(_: Dialect) -> sa.Select:
    t = alert_transitions.c
    return (
        sa.select(*TRANSITION_COLUMNS)
        .where(t.fingerprint == sa.bindparam("fingerprint"))
        .order_by(t.time_ns.desc(), t.id.desc())
        .limit(sa.bindparam("limit"))
    )


def alert_history(db: Database, fingerprint: str, limit: int) -> list[AlertTransition]:
    """An alert's transitions, oldest first (the last `limit`)."""
    paging.check_limit(limit)
    rows = db.fetch(db.sql(_history), {"fingerprint": fingerprint, "limit": limit})
    return [_decode_transition(row) for row in reversed(rows)]


def _between(_: Dialect) -> sa.Select:
    t = alert_transitions.c
    return (
        sa.select(*TRANSITION_COLUMNS)
        .where(t.time_ns >= sa.bindparam("start"), t.time_ns < sa.bindparam("end"))
        .order_by(t.time_ns, t.id)
    )


def transitions_between(db: Database, start_ns: int, end_ns: int) -> list[AlertTransition]:
    """Every transition of every alert in [start_ns, end_ns), oldest first."""
    return [_decode_transition(row) for row in db.fetch(db.sql(_between), {"start": start_ns, "end": end_ns})]


# -- silences ---------------------------------------------------------------------------------------------


def encode_silence(silence: Silence) -> tuple[Any, ...]:
    """A silence as a row (SILENCE_COLUMNS order)."""
    return tuple(
        codec.to_json(silence.matchers) if column.key == "matchers" else getattr(silence, column.key)
        for column in SILENCE_COLUMNS
    )


def _decode_silence(row: Sequence[Any]) -> Silence:
    fields = {column.key: value for column, value in zip(SILENCE_COLUMNS, row, strict=True)}
    fields["matchers"] = codec.from_json(fields["matchers"], list[LabelMatcher])
    fields["until_resolved"] = bool(fields["until_resolved"])
    return Silence(**fields)


def _upsert_silence(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(silences)
    replaced = {column.key: insert.excluded[column.key] for column in SILENCE_COLUMNS if column.key != "id"}
    return insert.on_conflict_do_update(index_elements=[silences.c.id], set_=replaced)


def save_silence(db: Database, row: tuple[Any, ...]) -> None:
    """Create or replace an encoded silence by id."""
    db.run(db.sql(_upsert_silence), row)


def _silences(_: Dialect, active: bool) -> sa.Select:
    s = silences.c
    where = [s.starts_ns <= sa.bindparam("at"), s.ends_ns > sa.bindparam("at")] if active else []
    return sa.select(*SILENCE_COLUMNS).where(*where).order_by(s.starts_ns, s.id)


def list_silences(db: Database, active_at_ns: int | None) -> list[Silence]:
    """Every silence, or those with starts_ns <= active_at_ns < ends_ns; ordered by start, then id."""
    rows = db.fetch(db.sql(_silences, active_at_ns is not None), {"at": active_at_ns})
    return [_decode_silence(row) for row in rows]


def _delete_silence(_: Dialect) -> sa.Delete:
    return sa.delete(silences).where(silences.c.id == sa.bindparam("id"))


def delete_silence(db: Database, silence_id: str) -> bool:
    """Remove a silence; False when there was none."""
    return db.run(db.sql(_delete_silence), {"id": silence_id}) > 0
