"""The notification router's grouping state: group timers, their firing members and repeat marks.

`save` applies one `GroupState` of changes inside the caller's write transaction: timers and marks are
upserted by key, members saved firing are inserted (an existing one is kept) and the others deleted. Entries of
one call are reduced to the last per key first, so the outcome does not depend on statement order.
"""

from __future__ import annotations

import sqlalchemy as sa

from tocsin.ext import GroupMember, GroupState, NotifyGroup, RepeatMark
from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.schema import notify_groups, notify_marks, notify_members


def _upsert_group(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(notify_groups).values(
        channel=sa.bindparam("channel"), group_id=sa.bindparam("group_id"),
        first_ns=sa.bindparam("first_ns"), last_ns=sa.bindparam("last_ns"),
    )
    return insert.on_conflict_do_update(
        index_elements=[notify_groups.c.channel, notify_groups.c.group_id],
        set_={"first_ns": insert.excluded.first_ns, "last_ns": insert.excluded.last_ns},
    )


def _join(d: Dialect) -> sa.ClauseElement:
    return d.insert(notify_members).on_conflict_do_nothing(
        index_elements=[notify_members.c.channel, notify_members.c.group_id, notify_members.c.fingerprint]
    )


def _leave(_: Dialect) -> sa.Delete:
    m = notify_members.c
    return sa.delete(notify_members).where(
        m.channel == sa.bindparam("channel"), m.group_id == sa.bindparam("group_id"),
        m.fingerprint == sa.bindparam("fingerprint"),
    )


def _upsert_mark(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(notify_marks).values(
        channel=sa.bindparam("channel"), fingerprint=sa.bindparam("fingerprint"),
        episode=sa.bindparam("episode"), time_ns=sa.bindparam("time_ns"),
    )
    return insert.on_conflict_do_update(
        index_elements=[notify_marks.c.channel, notify_marks.c.fingerprint],
        set_={"episode": insert.excluded.episode, "time_ns": insert.excluded.time_ns},
    )


def save(db: Database, state: GroupState) -> None:
    """Apply the changes of `state` (the last entry per key wins)."""
    groups = {(g.channel, g.group_id): g for g in state.groups}
    members = {(m.channel, m.group_id, m.fingerprint): m.firing for m in state.members}
    marks = {(m.channel, m.fingerprint): m for m in state.marks}
    if groups:
        db.run_many(db.sql(_upsert_group), [
            {"channel": g.channel, "group_id": g.group_id, "first_ns": g.first_ns, "last_ns": g.last_ns}
            for g in groups.values()
        ])
    joined = [key for key, firing in members.items() if firing]
    left = [dict(zip(("channel", "group_id", "fingerprint"), key, strict=True))
            for key, firing in members.items() if not firing]
    if joined:
        db.run_many(db.sql(_join), joined)
    if left:
        db.run_many(db.sql(_leave), left)
    if marks:
        db.run_many(db.sql(_upsert_mark), [
            {"channel": m.channel, "fingerprint": m.fingerprint, "episode": m.episode, "time_ns": m.time_ns}
            for m in marks.values()
        ])


_TABLES = {table.name: table for table in (notify_groups, notify_members, notify_marks)}


def _all(_: Dialect, name: str) -> sa.Select:
    return sa.select(*_TABLES[name].c)


def load(db: Database) -> GroupState:
    """Every stored timer, firing member and repeat mark."""
    return GroupState(
        groups=[NotifyGroup(channel=c, group_id=g, first_ns=first, last_ns=last)
                for c, g, first, last in db.fetch(db.sql(_all, notify_groups.name))],
        members=[GroupMember(channel=c, group_id=g, fingerprint=f)
                 for c, g, f in db.fetch(db.sql(_all, notify_members.name))],
        marks=[RepeatMark(channel=c, fingerprint=f, episode=episode, time_ns=at)
               for c, f, episode, at in db.fetch(db.sql(_all, notify_marks.name))],
    )


def _old_groups(_: Dialect) -> sa.Delete:
    return sa.delete(notify_groups).where(notify_groups.c.last_ns < sa.bindparam("cutoff"))


def _orphans(_: Dialect) -> sa.Delete:
    g, m = notify_groups.c, notify_members.c
    timer = sa.select(g.channel).where(g.channel == m.channel, g.group_id == m.group_id)
    return sa.delete(notify_members).where(~timer.exists())


def _old_marks(_: Dialect) -> sa.Delete:
    return sa.delete(notify_marks).where(notify_marks.c.time_ns < sa.bindparam("cutoff"))


def sweep(db: Database, cutoff_ns: int) -> tuple[int, bool]:
    """A retention step: timers last flushed before the cutoff with their members, older marks (not counted)."""
    db.run(db.sql(_old_groups), {"cutoff": cutoff_ns})
    db.run(db.sql(_orphans))
    db.run(db.sql(_old_marks), {"cutoff": cutoff_ns})
    return 0, False
