"""The router's grouping state: each group's flush timer and firing members, and each alert's repeat mark.

The router changes this state as it routes; every change is also noted, and `drain()` hands the notes over as a
`GroupState` for `StorageBackend.save_group_state`, so storage holds what memory holds and a process that
starts leading (a restart, a new leader) continues each group and repeat schedule from `restore(...)` instead of
starting them over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tocsin.models import GroupMember, GroupState, NotifyGroup, RepeatMark

GroupKey = tuple[str, str]
"""(channel, group id)."""
MarkKey = tuple[str, str]
"""(channel, alert fingerprint)."""


@dataclass
class GroupTimer:
    """One group's flush schedule: the first flush, the last one booked, and its firing members."""

    first_ns: int
    last_ns: int
    firing: set[str] = field(default_factory=set)

    def next_flush(self, now_ns: int, interval_ns: int) -> int:
        """The first tick (first flush + k × group_interval) at or after now."""
        if now_ns <= self.first_ns:
            return self.first_ns
        if interval_ns <= 0:
            return now_ns
        ticks = math.ceil((now_ns - self.first_ns) / interval_ns)
        return self.first_ns + ticks * interval_ns


class GroupBook:
    """Group timers by (channel, group) and repeat marks by (channel, fingerprint), with a log of changes."""

    def __init__(self) -> None:
        self.timers: dict[GroupKey, GroupTimer] = {}
        self.marks: dict[MarkKey, tuple[int, int]] = {}  # (episode, time_ns) of the last firing routed
        self._timers_changed: set[GroupKey] = set()
        self._members_changed: dict[tuple[str, str, str], bool] = {}
        self._marks_changed: set[MarkKey] = set()

    def book_flush(self, key: GroupKey, fingerprint: str, firing: bool, now_ns: int, wait_ns: int,
                   interval_ns: int) -> int:
        """The time a new row of the group is due: its next tick, or `wait_ns` from now for a group that is new
        or over (no firing members and its last flush passed); a firing alert joins the group."""
        timer = self.timers.get(key)
        if timer is None or (not timer.firing and timer.last_ns < now_ns):
            timer = self.timers[key] = GroupTimer(first_ns=now_ns + wait_ns, last_ns=0)
        due = timer.next_flush(now_ns, interval_ns)
        timer.last_ns = max(timer.last_ns, due)
        self._timers_changed.add(key)
        if firing and fingerprint not in timer.firing:
            timer.firing.add(fingerprint)
            self._members_changed[(*key, fingerprint)] = True
        return due

    def leave(self, key: GroupKey, fingerprint: str) -> None:
        """A resolved alert leaves its group and loses its repeat mark."""
        self.marks.pop((key[0], fingerprint), None)
        timer = self.timers.get(key)
        if timer is not None and fingerprint in timer.firing:
            timer.firing.discard(fingerprint)
            self._members_changed[(*key, fingerprint)] = False

    def repeat_too_soon(self, key: MarkKey, episode: int, now_ns: int, repeat_ns: int) -> bool:
        """True when this episode was routed to the channel less than `repeat_ns` ago; else marks it now."""
        last = self.marks.get(key)
        if last is not None and last[0] == episode and now_ns - last[1] < repeat_ns:
            return True
        self.marks[key] = (episode, now_ns)
        self._marks_changed.add(key)
        return False

    def prune(self, now_ns: int, longest_repeat_ns: int) -> None:
        """Forget groups that are over and marks older than any repeat interval (storage sweeps its own)."""
        self.timers = {key: timer for key, timer in self.timers.items() if timer.firing or timer.last_ns >= now_ns}
        self.marks = {key: mark for key, mark in self.marks.items() if now_ns - mark[1] < longest_repeat_ns}

    def drain(self) -> GroupState:
        """The changes since the last drain, as a `GroupState` to save; forgets them."""
        state = GroupState(
            groups=[NotifyGroup(channel=c, group_id=g, first_ns=t.first_ns, last_ns=t.last_ns)
                    for (c, g) in sorted(self._timers_changed) if (t := self.timers.get((c, g))) is not None],
            members=[GroupMember(channel=c, group_id=g, fingerprint=f, firing=firing)
                     for (c, g, f), firing in self._members_changed.items()],
            marks=[RepeatMark(channel=c, fingerprint=f, episode=m[0], time_ns=m[1])
                   for (c, f) in sorted(self._marks_changed) if (m := self.marks.get((c, f))) is not None],
        )
        self._timers_changed.clear()
        self._members_changed.clear()
        self._marks_changed.clear()
        return state

    def unsaved(self, state: GroupState) -> None:
        """A drained `state` could not be saved: note its keys again (their current values go in the next drain)."""
        self._timers_changed.update((g.channel, g.group_id) for g in state.groups)
        for m in state.members:
            self._members_changed.setdefault((m.channel, m.group_id, m.fingerprint), m.firing)
        self._marks_changed.update((m.channel, m.fingerprint) for m in state.marks)

    def restore(self, state: GroupState) -> None:
        """Take over stored state (what this process routed itself and has not saved yet stays on top of it)."""
        pending = self.drain()
        self.timers = {(g.channel, g.group_id): GroupTimer(first_ns=g.first_ns, last_ns=g.last_ns)
                       for g in state.groups}
        for member in state.members:
            timer = self.timers.get((member.channel, member.group_id))
            if timer is not None:
                timer.firing.add(member.fingerprint)
        self.marks = {(m.channel, m.fingerprint): (m.episode, m.time_ns) for m in state.marks}
        self.apply(pending)

    def apply(self, state: GroupState) -> None:
        """Apply unsaved changes on top of the current state and keep them noted for the next drain."""
        for g in state.groups:
            timer = self.timers.setdefault((g.channel, g.group_id), GroupTimer(first_ns=g.first_ns, last_ns=0))
            timer.first_ns, timer.last_ns = g.first_ns, g.last_ns
            self._timers_changed.add((g.channel, g.group_id))
        for m in state.members:
            timer = self.timers.get((m.channel, m.group_id))
            if timer is not None:
                (timer.firing.add if m.firing else timer.firing.discard)(m.fingerprint)
            self._members_changed[(m.channel, m.group_id, m.fingerprint)] = m.firing
        for mark in state.marks:
            self.marks[(mark.channel, mark.fingerprint)] = (mark.episode, mark.time_ns)
            self._marks_changed.add((mark.channel, mark.fingerprint))
