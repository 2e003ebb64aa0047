"""What the notify service knows about each (channel, alert) pair, so a stale trigger never follows its resolve.

PagerDuty opens a *new* incident for a trigger whose dedup key was already resolved (RELIABILITY.md §1.3),
so a firing notification still being retried when the alert resolves must be dropped, not sent late. The
router records each resolve it queues and the dispatcher each firing it delivers; entries are per
(channel, fingerprint) and hold the newest episode. Rows queued before this process started are checked
against the stored outbox once per pair instead (`needs_history`), so a restart keeps the guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Pair = tuple[str, str]


@dataclass
class Ledger:
    """The newest resolved and the newest notified-as-firing episode per (channel, fingerprint)."""

    started_ns: int
    resolved: dict[Pair, tuple[int, int]] = field(default_factory=dict)  # episode, time_ns
    notified: dict[Pair, tuple[int, int]] = field(default_factory=dict)
    checked: set[Pair] = field(default_factory=set)

    def resolve_queued(self, pair: Pair, episode: int, now_ns: int) -> None:
        """A resolve for `episode` is in the outbox: firing rows of that episode or older are stale."""
        if episode >= self.resolved.get(pair, (-1, 0))[0]:
            self.resolved[pair] = (episode, now_ns)

    def firing_sent(self, pair: Pair, episode: int, now_ns: int) -> None:
        """A firing notification for `episode` reached the channel."""
        if episode >= self.notified.get(pair, (-1, 0))[0]:
            self.notified[pair] = (episode, now_ns)

    def resolved_episode(self, pair: Pair) -> int:
        """The newest episode with a resolve queued or sent (-1 when none is known)."""
        return self.resolved.get(pair, (-1, 0))[0]

    def notified_episode(self, pair: Pair) -> int:
        """The newest episode delivered as firing (-1 when none is known)."""
        return self.notified.get(pair, (-1, 0))[0]

    def needs_history(self, pair: Pair, created_ns: int) -> bool:
        """True for a row queued before this process started whose pair has not been read from storage yet."""
        return created_ns < self.started_ns and pair not in self.checked

    def prune(self, before_ns: int) -> None:
        """Forget entries older than `before_ns` (no row can still be waiting on them)."""
        self.resolved = {pair: entry for pair, entry in self.resolved.items() if entry[1] >= before_ns}
        self.notified = {pair: entry for pair, entry in self.notified.items() if entry[1] >= before_ns}
        self.checked.clear()
