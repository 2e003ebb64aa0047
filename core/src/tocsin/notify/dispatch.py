"""The dispatcher: claims due outbox rows, sends each group as one message in its own task, records every attempt.

One task per (channel, group) message, so a slow or broken channel holds up only itself. Each attempt has a
timeout on the monitor's clock; its failure is classified by the channel (retryable, permanent, rate
limited) and the rows go back to the outbox with their next attempt time, or to `failed` — which emits a
"notification failed" event and queues a notice for the channel's fallback. Sends to one destination are
spaced by its rate limit. Per (channel, alert) order is kept: messages of one group go one at a time, a
firing row whose alert has since resolved is dropped rather than sent late, and an alert that resolved
before it was ever notified is not notified at all.

A claimed row carries a lease; a crash between sending and recording leaves it `sending` until the lease
expires, and then it is claimed and sent again (at least once, never zero times).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tocsin.clock import Clock
from tocsin.models import Alert, AttemptOutcome, Delivery, DeliveryAttempt, DeliveryState, Event, Notification
from tocsin.notify.channel import NotificationChannel, Verdict
from tocsin.notify.ledger import Ledger
from tocsin.notify.ratelimit import Limiter
from tocsin.notify.redact import scrub
from tocsin.notify.retry import RetryPolicy
from tocsin.notify.routing import Router
from tocsin.notify.templates import RenderContext, current_render
from tocsin.storage.protocol import DeliveryQuery, StorageBackend

internal_log = logging.getLogger("tocsin")

Render = Callable[[NotificationChannel, RenderContext, Notification], Notification]
HISTORY_ROWS = 50


class _AttemptTimedOut(Exception):
    pass


@dataclass
class AttemptResult:
    """How one send went: its outcome, the channel's verdict on a failure, latency, status and scrubbed error."""

    outcome: AttemptOutcome
    verdict: Verdict | None = None
    latency_s: float = 0.0
    status_code: int | None = None
    error: str = ""


@dataclass
class DispatchStats:
    """Running totals since the service started (the same numbers go to `tocsin_notification*` metrics)."""

    messages: int = 0
    attempts: int = 0
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    deferred: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def episode_of(row: Delivery) -> int:
    """The alert episode a row is about (0 when its payload has none)."""
    alert = row.payload.get("alert")
    return int(alert.get("episode", 0)) if isinstance(alert, dict) else 0


def group_of(row: Delivery) -> str:
    """The group id the router put a row in (the row's own id for rows without one)."""
    group = row.payload.get("group")
    return str(group.get("id", row.id)) if isinstance(group, dict) else row.id


class Dispatcher:
    """Sends due outbox rows through their channels, with retries, timeouts, rate limits and ordering."""

    def __init__(
        self,
        *,
        storage: Callable[[], StorageBackend],
        channels: dict[str, NotificationChannel],
        router: Router,
        ledger: Ledger,
        policy: RetryPolicy,
        clock: Clock,
        render: Render,
        context_for: Callable[[NotificationChannel, str, Sequence[Delivery]], RenderContext],
        emit: Callable[[Event], None],
        metrics: Any,
        secrets: dict[str, list[str]],
        timeout_s: float,
        lease_s: float,
        claim_limit: int,
    ) -> None:
        self.storage = storage
        self.channels = channels
        self.router = router
        self.ledger = ledger
        self.policy = policy
        self.clock = clock
        self.render = render
        self.context_for = context_for
        self.emit = emit
        self.metrics = metrics
        self.secrets = secrets
        self.timeout_s = timeout_s
        self.lease_s = lease_s
        self.claim_limit = claim_limit
        self.limiter = Limiter()
        self.stats = DispatchStats()
        self.in_flight: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}  # lock, [tasks using it]
        self._busy = 0
        self._calm = asyncio.Event()
        self._calm.set()

    # -- claiming ----------------------------------------------------------------------------------------

    async def dispatch_due(self, now_ns: int) -> int:
        """Claim every due row, start one task per (channel, group) message; returns how many were started."""
        rows = await self.storage().claim_deliveries(now_ns, self.claim_limit, self.lease_s)
        batches: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
        for row in rows:
            if row.id not in self.in_flight:
                batches[(row.channel, group_of(row))].append(row)
        horizon_ns = now_ns + round(self.lease_s * 1e9 / 2)
        started = 0
        for (name, group), batch in batches.items():
            channel = self.channels.get(name)
            if channel is None:
                missing = f"no channel named {name!r} is configured"
                await self._record(None, batch, AttemptResult("permanent", Verdict.permanent(), error=missing), now_ns)
                continue
            if self.limiter.peek(channel.destination(), channel.rate_limit, now_ns) > horizon_ns:
                self.stats.deferred += len(batch)  # left leased: claimed again when the lease runs out
                continue
            slot = self.limiter.reserve(channel.destination(), channel.rate_limit, now_ns)
            self.in_flight.update(row.id for row in batch)
            self._enter()
            task = asyncio.create_task(self._deliver(channel, group, batch, slot), name=f"tocsin-notify-{name}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            started += 1
        return started

    # -- settling (for tests and shutdown) ---------------------------------------------------------------

    def _enter(self) -> None:
        self._busy += 1
        self._calm.clear()

    def _leave(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._calm.set()

    async def settled(self) -> None:
        """Wait until every delivery task has finished or is waiting on the clock (a backoff, a rate limit)."""
        while self._busy:
            await self._calm.wait()
            await asyncio.sleep(0)

    @contextlib.contextmanager
    def _idle(self) -> Iterator[None]:
        """Not busy meanwhile (waiting on the clock, or for a turn to send), as `settled` counts."""
        self._leave()
        try:
            yield
        finally:
            self._enter()

    async def _sleep_until(self, when_ns: int) -> None:
        delay = (when_ns - self.clock.now_ns()) / 1e9
        if delay > 0:
            with self._idle():
                await self.clock.sleep(delay)

    # -- one message task --------------------------------------------------------------------------------

    async def _deliver(self, channel: NotificationChannel, group: str, rows: list[Delivery], slot_ns: int) -> None:
        key = (channel.name, group)
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                live = await self._supersede(channel.name, rows)
                await self._send_waves(channel, live, slot_ns)
        except Exception as error:  # never let one message take the dispatcher down
            internal_log.warning("tocsin: delivering to channel %r failed unexpectedly: %r", channel.name, error)
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]
            self.in_flight.difference_update(row.id for row in rows)
            self._leave()

    async def _send_waves(self, channel: NotificationChannel, rows: list[Delivery], slot_ns: int | None) -> None:
        """Send rows in order: the n-th row of each alert goes in wave n; a failing alert holds its later rows.

        The first message uses the rate-limit slot booked when the rows were claimed; later ones book their own.
        """
        held: dict[str, int] = {}  # fingerprint -> retry time of the row that failed
        for wave in _waves(rows):
            for chunk in _chunks(wave, channel.max_batch):
                blocked = [row for row in chunk if row.fingerprint in held]
                if blocked:
                    until = max(held[row.fingerprint] for row in blocked)
                    note = AttemptResult("retryable", Verdict.retryable(),
                                         error="held back until an earlier notification of the same alert is sent")
                    await self._record(channel, blocked, note, self.clock.now_ns(), retry_at_ns=until)
                    chunk = [row for row in chunk if row.fingerprint not in held]
                    if not chunk:
                        continue
                destination, limit = channel.destination(), channel.rate_limit
                if slot_ns is None:
                    slot_ns = self.limiter.reserve(destination, limit, self.clock.now_ns())
                await self._sleep_until(slot_ns)
                slot_ns = None
                async with self.limiter.turn(destination if limit is not None else None, self._idle):
                    # the booked slot was a plan: wait until one interval after the previous send to this
                    # destination was answered (it may have started late), and past any Retry-After
                    while (ready := self.limiter.ready(destination, limit, self.clock.now_ns())) > self.clock.now_ns():
                        await self._sleep_until(ready)
                    result = await self._attempt(channel, chunk)
                    self.limiter.answered(destination, limit, self.clock.now_ns(), result.verdict,
                                          self.policy.max_retry_after_s)
                retry_at = await self._record(channel, chunk, result, self.clock.now_ns())
                if retry_at is not None:
                    held.update(dict.fromkeys((row.fingerprint for row in chunk), retry_at))

    async def _attempt(self, channel: NotificationChannel, rows: Sequence[Delivery]) -> AttemptResult:
        """Render and send one message with the per-attempt timeout; classify a failure."""
        try:
            context = self.context_for(channel, _message_kind(rows), rows)
            draft = Notification(title="", body="", severity=context.severity(), kind=context.kind,
                                 alert=context.alerts[0][1] if context.alerts else None,
                                 alerts=[alert for _, alert in context.alerts],
                                 alert_kinds=[kind for kind, _ in context.alerts],
                                 idempotency_key=_message_key(rows))
            notification = self.render(channel, context, draft)
        except Exception as error:
            return AttemptResult("permanent", Verdict.permanent(), error=f"rendering failed: {error}")
        token = current_render.set(context)  # the channel sees the message's context while it sends, too
        try:
            return await self.send(channel, notification)
        finally:
            current_render.reset(token)

    async def send(self, channel: NotificationChannel, notification: Notification) -> AttemptResult:
        """One send with the channel's timeout on the monitor's clock; never raises (but for cancellation)."""
        timeout = channel.timeout_s or self.timeout_s
        started = self.clock.now_ns()
        try:
            await self._with_timeout(channel.send(notification), timeout)
        except _AttemptTimedOut:
            latency = (self.clock.now_ns() - started) / 1e9
            return AttemptResult("timeout", Verdict.retryable(), latency, error=f"no answer within {timeout:g} s")
        except Exception as error:
            latency = (self.clock.now_ns() - started) / 1e9
            try:
                verdict = channel.classify_error(error)
            except Exception as classify_error:
                verdict = Verdict.permanent()
                error = classify_error
            text = scrub(f"{type(error).__name__}: {error}", self.secrets.get(channel.name, ()))
            return AttemptResult(verdict.kind, verdict, latency, verdict.status_code, text)
        return AttemptResult("sent", None, (self.clock.now_ns() - started) / 1e9)

    async def _with_timeout(self, awaitable: Awaitable[None], seconds: float) -> None:
        send = asyncio.ensure_future(awaitable)
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            done, _ = await asyncio.wait({send, timer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            send.cancel()
            raise
        finally:
            timer.cancel()
        if send in done:
            send.result()
            return
        send.cancel()
        try:
            await send
        except (asyncio.CancelledError, Exception):
            pass
        raise _AttemptTimedOut

    # -- recording ---------------------------------------------------------------------------------------

    async def _record(self, channel: NotificationChannel | None, rows: Sequence[Delivery], result: AttemptResult,
                      now_ns: int, *, retry_at_ns: int | None = None) -> int | None:
        """Log the attempt on every row and move each to its next state; returns the retry time, if any."""
        name = rows[0].channel
        storage = self.storage()
        retry_at = None
        if retry_at_ns is None:  # a held-back row was not tried: no attempt to count
            self.stats.attempts += 1
            self.stats.outcomes[result.outcome] += 1
            self.metrics.counter("tocsin_notification_attempts_total").inc(channel=name, outcome=result.outcome)
            self.metrics.histogram("tocsin_notification_seconds").observe(result.latency_s, channel=name)
        if result.outcome == "sent":
            self.stats.messages += 1
        for row in rows:
            number = row.attempts + 1
            state: DeliveryState
            if result.outcome == "sent":
                state, next_ns = "sent", None
            elif retry_at_ns is not None:
                state, next_ns = "pending", retry_at_ns
            else:
                next_ns = self.policy.next_attempt_ns(row, result.verdict or Verdict.retryable(), number, now_ns)
                state = "pending" if next_ns is not None else "failed"
            attempt = DeliveryAttempt(delivery_id=row.id, attempt=number, time_ns=now_ns, outcome=result.outcome,
                                      latency_s=result.latency_s, status_code=result.status_code, error=result.error)
            try:
                await storage.record_attempt(attempt, state, next_ns)
            except Exception as error:  # the lease runs out and the row is sent again: a duplicate, not a loss
                internal_log.warning("tocsin: recording a delivery attempt failed: %r", error)
                continue
            if state == "pending":
                retry_at = next_ns
            else:
                self.router.settled(name)
            if state == "sent":
                self.stats.sent += 1
                self.metrics.counter("tocsin_notifications_sent_total").inc(channel=name)
                if row.kind == "firing":
                    self.ledger.firing_sent((name, row.fingerprint), episode_of(row), now_ns)
            elif state == "failed":
                await self._failed(row, result.error, now_ns)
        if result.outcome == "sent":
            self.emit(Event(topic="notifications", type="sent", time_ns=now_ns,
                            data={"channel": name, "count": len(rows), "deliveries": [row.id for row in rows[:100]]}))
        return retry_at

    async def _failed(self, row: Delivery, error: str, now_ns: int) -> None:
        """A row finally failed: count it, emit the event, and queue the notice for the fallback channel."""
        self.stats.failed += 1
        self.metrics.counter("tocsin_notifications_failed_total").inc(channel=row.channel)
        notice = self.router.failure_notice(row, error, now_ns)
        self.emit(Event(topic="notifications", type="failed", time_ns=now_ns, data={
            "delivery_id": row.id, "channel": row.channel, "fingerprint": row.fingerprint, "kind": row.kind,
            "attempts": row.attempts + 1, "error": error, "fallback": notice.channel if notice else None,
        }))
        if notice is not None:
            try:
                await self.storage().enqueue_deliveries([notice])
            except Exception as error:
                internal_log.warning("tocsin: queueing a notification-failed notice failed: %r", error)

    async def _drop(self, rows: Sequence[Delivery], reason: str, now_ns: int) -> None:
        for row in rows:
            attempt = DeliveryAttempt(delivery_id=row.id, attempt=row.attempts + 1, time_ns=now_ns,
                                      outcome="permanent", latency_s=0.0, error=reason)
            await self.storage().record_attempt(attempt, "dropped")
            self.router.settled(row.channel)
            self.stats.dropped += 1
            self.metrics.counter("tocsin_notifications_dropped_total").inc(channel=row.channel, reason="superseded")

    # -- ordering ----------------------------------------------------------------------------------------

    async def _supersede(self, channel: str, rows: list[Delivery]) -> list[Delivery]:
        """Drop rows whose news is stale; returns the rest in creation order."""
        by_alert: dict[str, list[Delivery]] = defaultdict(list)
        for row in sorted(rows, key=lambda row: (row.created_ns, row.fingerprint, row.id)):
            by_alert[row.fingerprint].append(row)
        live: list[Delivery] = []
        now_ns = self.clock.now_ns()
        for fingerprint, alert_rows in by_alert.items():
            pair = (channel, fingerprint)
            if any(self.ledger.needs_history(pair, row.created_ns) for row in alert_rows):
                await self._load_history(pair)
            keep, stale = self._judge(pair, alert_rows)
            for reason, dropped in stale.items():
                await self._drop(dropped, reason, now_ns)
            live.extend(keep)
        return live

    def _judge(self, pair: tuple[str, str], rows: list[Delivery]) -> tuple[list[Delivery], dict[str, list[Delivery]]]:
        keep: list[Delivery] = []
        stale: dict[str, list[Delivery]] = defaultdict(list)
        unsent_firing: set[int] = set()
        resolved_episode, resolved_ns = self.ledger.resolved.get(pair, (-1, 0))
        for i, row in enumerate(rows):
            episode, later = episode_of(row), rows[i + 1:]
            if row.kind == "firing":
                if (resolved_episode >= episode and resolved_ns >= row.created_ns) or any(
                        other.kind == "resolved" and episode_of(other) >= episode for other in later):
                    stale["superseded: the alert resolved before this was delivered"].append(row)
                    if row.attempts == 0 and row.created_ns >= self.ledger.started_ns:
                        unsent_firing.add(episode)
                    continue
                if any(other.kind == "firing" and episode_of(other) == episode for other in later):
                    stale["superseded by a newer notification of the same alert"].append(row)
                    continue
            elif row.kind == "resolved":
                if any(other.kind == "resolved" and episode_of(other) == episode for other in later):
                    stale["superseded by a newer notification of the same alert"].append(row)
                    continue
                if episode in unsent_firing and self.ledger.notified_episode(pair) < episode:
                    stale["the alert resolved before it was ever notified"].append(row)
                    continue
            keep.append(row)
        return keep, stale

    async def _load_history(self, pair: tuple[str, str]) -> None:
        """Learn about a (channel, alert) pair from the stored outbox (rows from before this process)."""
        channel, fingerprint = pair
        page = await self.storage().list_deliveries(DeliveryQuery(channel=channel, fingerprint=fingerprint,
                                                                  limit=HISTORY_ROWS))
        for row in page.items:
            if row.kind == "resolved" and row.state != "dropped":
                self.ledger.resolve_queued(pair, episode_of(row), row.created_ns)
            elif row.kind == "firing" and row.state == "sent":
                self.ledger.firing_sent(pair, episode_of(row), row.sent_ns or row.created_ns)
        self.ledger.checked.add(pair)

    # -- shutdown ----------------------------------------------------------------------------------------

    async def stop(self, grace_s: float) -> None:
        """Let sends in progress finish for up to `grace_s` real seconds, then cancel every task left (those
        waiting on the clock at once); their leases bring the rows back after a restart."""
        try:
            await asyncio.wait_for(self.settled(), grace_s)
        except TimeoutError:
            pass
        running = list(self.tasks)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _waves(rows: list[Delivery]) -> list[list[Delivery]]:
    """Split rows (in creation order) so each alert event appears at most once per wave, earlier rows first.

    Notices about failed deliveries are not alert events: any number of them go in one wave.
    """
    waves: list[list[Delivery]] = []
    seen: dict[str, int] = defaultdict(int)
    for row in rows:
        key = row.id if row.kind == "failed" else row.fingerprint
        index = seen[key]
        seen[key] += 1
        if index == len(waves):
            waves.append([])
        waves[index].append(row)
    return waves


def _chunks(rows: list[Delivery], max_batch: int | None) -> list[list[Delivery]]:
    """Messages for one wave: alert events (firing and resolved) together, other kinds apart, cut to max_batch."""
    by_kind: dict[str, list[Delivery]] = defaultdict(list)
    for row in rows:
        by_kind["alert" if row.kind in ("firing", "resolved") else row.kind].append(row)
    size = max_batch or max(1, len(rows))
    return [kind_rows[i:i + size] for kind_rows in by_kind.values() for i in range(0, len(kind_rows), size)]


def _message_kind(rows: Sequence[Delivery]) -> str:
    kinds = {row.kind for row in rows}
    if kinds <= {"firing", "resolved"}:
        return "firing" if "firing" in kinds else "resolved"
    return rows[0].kind


def _message_key(rows: Sequence[Delivery]) -> str:
    """The idempotency key: the alert episode's for a one-alert message, else one derived from the rows."""
    if len(rows) == 1:
        return rows[0].idempotency_key
    digest = hashlib.sha256("\n".join(sorted(row.id for row in rows)).encode()).hexdigest()[:32]
    return f"tocsin/group/{digest}"


def decode_alert(row: Delivery) -> Alert:
    """The alert snapshot a row carries (a bare one with its fingerprint when the payload has none)."""
    try:
        return msgspec.convert(row.payload.get("alert") or {"fingerprint": row.fingerprint, "rule": ""}, Alert)
    except msgspec.ValidationError:
        return Alert(fingerprint=row.fingerprint, rule=str(row.payload.get("alert", {}).get("rule", "")))
