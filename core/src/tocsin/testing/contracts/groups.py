"""Contract tests for the notification grouping state (group timers, firing members, repeat marks), which lets a
restarted process continue each notification group and repeat schedule instead of starting them over."""

from __future__ import annotations

from tocsin.models import GroupMember, GroupState, NotifyGroup, RepeatMark
from tocsin.storage.protocol import Retention
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import DAY, ns_at


def _group(channel: str, group_id: str, first_s: float, last_s: float) -> NotifyGroup:
    return NotifyGroup(channel=channel, group_id=group_id, first_ns=ns_at(first_s), last_ns=ns_at(last_s))


def _member(channel: str, group_id: str, fingerprint: str, *, firing: bool = True) -> GroupMember:
    return GroupMember(channel=channel, group_id=group_id, fingerprint=fingerprint, firing=firing)


def _mark(channel: str, fingerprint: str, episode: int, at_s: float) -> RepeatMark:
    return RepeatMark(channel=channel, fingerprint=fingerprint, episode=episode, time_ns=ns_at(at_s))


def _sorted(state: GroupState) -> tuple[list, list, list]:
    """The state's lists in a fixed order (a backend may return them in any)."""
    return (
        sorted((g.channel, g.group_id, g.first_ns, g.last_ns) for g in state.groups),
        sorted((m.channel, m.group_id, m.fingerprint, m.firing) for m in state.members),
        sorted((m.channel, m.fingerprint, m.episode, m.time_ns) for m in state.marks),
    )


class GroupsContract(ContractBase):
    """`save_group_state` and `load_group_state`: upserts by key, members joining and leaving, later entries
    winning within one call, and the notifications retention sweeping old timers and marks."""

    async def test_an_empty_store_has_no_group_state(self, backend):
        assert _sorted(await backend.load_group_state()) == ([], [], [])

    async def test_saved_state_is_loaded_back(self, backend):
        await backend.save_group_state(GroupState(
            groups=[_group("ops", "g1", 30, 30), _group("pager", "g1", 0, 300)],
            members=[_member("ops", "g1", "fp1"), _member("ops", "g1", "fp2"), _member("pager", "g1", "fp1")],
            marks=[_mark("ops", "fp1", 1, 0), _mark("pager", "fp1", 3, 10)],
        ))
        groups, members, marks = _sorted(await backend.load_group_state())
        assert groups == [("ops", "g1", ns_at(30), ns_at(30)), ("pager", "g1", ns_at(0), ns_at(300))]
        assert members == [("ops", "g1", "fp1", True), ("ops", "g1", "fp2", True), ("pager", "g1", "fp1", True)]
        assert marks == [("ops", "fp1", 1, ns_at(0)), ("pager", "fp1", 3, ns_at(10))]

    async def test_timers_and_marks_are_replaced_by_key(self, backend):
        await backend.save_group_state(GroupState(groups=[_group("ops", "g1", 30, 30)],
                                                  marks=[_mark("ops", "fp1", 1, 0)]))
        await backend.save_group_state(GroupState(groups=[_group("ops", "g1", 30, 330)],
                                                  marks=[_mark("ops", "fp1", 2, 500)]))
        groups, _, marks = _sorted(await backend.load_group_state())
        assert groups == [("ops", "g1", ns_at(30), ns_at(330))]
        assert marks == [("ops", "fp1", 2, ns_at(500))]

    async def test_members_leave_when_saved_not_firing(self, backend):
        await backend.save_group_state(GroupState(members=[_member("ops", "g1", "fp1"), _member("ops", "g1", "fp2")]))
        await backend.save_group_state(GroupState(members=[
            _member("ops", "g1", "fp1", firing=False),
            _member("ops", "g1", "fp1", firing=False),  # twice: still no error
            _member("ops", "g9", "fp7", firing=False),  # never joined: no error
            _member("ops", "g1", "fp2"),  # joining again changes nothing
        ]))
        _, members, _ = _sorted(await backend.load_group_state())
        assert members == [("ops", "g1", "fp2", True)]

    async def test_within_one_call_later_entries_win(self, backend):
        await backend.save_group_state(GroupState(
            groups=[_group("ops", "g1", 30, 30), _group("ops", "g1", 30, 330)],
            members=[_member("ops", "g1", "fp1"), _member("ops", "g1", "fp1", firing=False),
                     _member("ops", "g1", "fp2", firing=False), _member("ops", "g1", "fp2")],
            marks=[_mark("ops", "fp1", 1, 0), _mark("ops", "fp1", 1, 60)],
        ))
        groups, members, marks = _sorted(await backend.load_group_state())
        assert groups == [("ops", "g1", ns_at(30), ns_at(330))]
        assert members == [("ops", "g1", "fp2", True)]
        assert marks == [("ops", "fp1", 1, ns_at(60))]

    async def test_keys_are_separate_per_channel_and_group(self, backend):
        await backend.save_group_state(GroupState(
            groups=[_group("ops", "g1", 1, 1), _group("ops", "g2", 2, 2), _group("pager", "g1", 3, 3)],
            members=[_member("ops", "g1", "fp"), _member("ops", "g2", "fp"), _member("pager", "g1", "fp")],
        ))
        await backend.save_group_state(GroupState(members=[_member("ops", "g2", "fp", firing=False)]))
        groups, members, _ = _sorted(await backend.load_group_state())
        assert len(groups) == 3
        assert members == [("ops", "g1", "fp", True), ("pager", "g1", "fp", True)]

    async def test_the_notifications_retention_sweeps_old_timers_with_their_members_and_old_marks(self, backend):
        await backend.save_group_state(GroupState(
            groups=[_group("ops", "old", 0, 10), _group("ops", "new", 0, 2 * DAY)],
            members=[_member("ops", "old", "fp1"), _member("ops", "new", "fp2")],
            marks=[_mark("ops", "fp1", 1, 10), _mark("ops", "fp2", 1, 2 * DAY)],
        ))
        swept = await backend.sweep(Retention(notifications=DAY), ns_at(2 * DAY))
        assert swept["notifications"] == 0  # grouping state is not counted
        groups, members, marks = _sorted(await backend.load_group_state())
        assert groups == [("ops", "new", ns_at(0), ns_at(2 * DAY))]
        assert members == [("ops", "new", "fp2", True)]
        assert marks == [("ops", "fp2", 1, ns_at(2 * DAY))]

    async def test_no_notifications_retention_keeps_the_state(self, backend):
        await backend.save_group_state(GroupState(groups=[_group("ops", "g", 0, 0)], marks=[_mark("ops", "f", 1, 0)]))
        await backend.sweep(Retention(notifications=None), ns_at(400 * DAY))
        groups, _, marks = _sorted(await backend.load_group_state())
        assert len(groups) == 1 and len(marks) == 1
