"""The WebSocket hub: one event-bus subscription per monitor, fanned out to every `/api/v1/ws` client.

Each client (`Client`) has a bounded queue of encoded messages that its connection's sender task drains; a
client whose queue is full is marked `overflowed` and its connection closes it, so a slow reader can never
grow the server's memory. An event that carries its data (alerts, health, workflows, notifications, system)
is encoded once and offered to every client on its topic, with no storage read. Logs, traces and metrics are
read from storage by shared feeds: one `LogFeed` per distinct log query and one `TraceFeed` read once per
`written` event (coalesced) whatever the number of clients, and one `MetricFeed` per (metric, aggregate)
queried once per `[server] ws_snapshot_interval`.

A client's cursor holds a position (a time in ns) per replayable topic: what it has been sent up to. `replay`
reads what came after those positions from storage when a client reconnects with `since`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import weakref
from typing import Any

import msgspec

from tocsin import Monitor
from tocsin.ext import (
    ExecutionQuery,
    LogQuery,
    LogRecord,
    MetricQuery,
    Span,
    SpanQuery,
    StorageBackend,
    Subscription,
    check_query,
)

log = logging.getLogger("tocsin.api")

PLAIN_TOPICS = ("alerts", "health", "workflows", "notifications", "system")
"""Topics whose bus events carry their data: pushed as they are, without reading storage."""
READ_TOPICS = ("logs", "traces")
"""Topics whose bus events only say that records were written: the new records are read from storage."""
TOPICS = (*PLAIN_TOPICS, *READ_TOPICS)
METRICS = "metrics:"
"""The prefix of a metric's topic: `metrics:<name>` gets a snapshot of that metric every interval."""
REPLAYABLE = {"alerts": "a", "health": "h", "logs": "l", "traces": "t", "workflows": "w"}
"""The topics a `since` cursor replays from storage, with their one-letter code in the cursor."""
CURSOR_VERSION = "v1"

PUSH_LIMIT = 500
"""The most log records or spans one live push carries (the newest, with `truncated` when there were more)."""
REPLAY_LIMIT = 1000
"""The most items a reconnect replays per topic (the newest, oldest first)."""
REPLAY_WINDOW_NS = 24 * 3600 * 10**9
"""A replay reaches back at most a day; an older `since` replays the last day and reports the topics truncated."""
MAX_TOPICS = 64
"""The most topics one client may hold (each `metrics:<name>` is a topic)."""
CHUNK = 100
"""Replayed log records and spans are sent this many per message."""
LOG_SLACK_NS = 10 * 10**9
"""A log feed reads from 10 s before the newest record it pushed, so records stamped slightly out of order
still arrive; log ids keep them from being pushed twice."""
TRACE_LOOKBACK_NS = 300 * 10**9
"""The trace feed looks at spans that started in the last 5 minutes."""
WORKFLOW_LOOKBACK_NS = 3600 * 10**9
"""A workflows replay also looks at executions started up to an hour before the cursor (to catch their end)."""
MIN_NS, MAX_NS = -(2**63), 2**63 - 1
METRIC_WINDOW_NS = 60 * 10**9
METRIC_STEP_S = 10.0
SEEN_LOGS = 10_000
"""Log records remembered as pushed, per query."""
SEEN_SPANS = 10_000
BUS_BUFFER = 10_000
"""How many bus events the hub keeps waiting for it (the bus drops the oldest beyond that)."""

_encoder = msgspec.json.Encoder(enc_hook=str)


def message(topic: str, type_: str, data: Any, *, replayed: bool = False) -> bytes:
    """A topic message, encoded once for every client (each adds its own cursor)."""
    body: dict[str, Any] = {"topic": topic, "type": type_, "data": data}
    if replayed:
        body["replayed"] = True
    return _encoder.encode(body)


def _after(time_ns: int, back_ns: int = 0) -> int:
    """The first nanosecond after `time_ns` (less `back_ns`), kept in the signed 64-bit range."""
    return min(MAX_NS, max(MIN_NS, time_ns + 1 - back_ns))


def format_cursor(positions: dict[str, int]) -> str:
    """The opaque cursor of some topic positions: `v1.a<ns>.l<ns>...`."""
    return ".".join([CURSOR_VERSION, *(f"{REPLAYABLE[topic]}{positions[topic]}" for topic in sorted(positions))])


def parse_cursor(text: str) -> dict[str, int]:
    """The topic positions of a cursor; ValueError when it is not one."""
    parts = text.split(".")
    if parts[0] != CURSOR_VERSION:
        raise ValueError(f"not a cursor of this server: {text[:40]!r}")
    topics = {code: topic for topic, code in REPLAYABLE.items()}
    positions: dict[str, int] = {}
    for part in parts[1:]:
        topic = topics.get(part[:1])
        try:
            value = int(part[1:])
        except ValueError:
            value = None
        if topic is None or value is None or not MIN_NS <= value <= MAX_NS:
            raise ValueError(f"not a cursor of this server: {text[:40]!r}")
        positions[topic] = value
    return positions


class Client:
    """One WebSocket client: its topics, its cursor and a bounded queue of messages waiting to be sent."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(capacity)
        self.topics: set[str] = set()
        self.log_query = ""
        self.aggregates: dict[str, str] = {}
        """Metric name → aggregate of the `metrics:<name>` topics."""
        self.positions: dict[str, int] = {}
        """Replayable topic → the time (ns) this client has been sent everything up to."""
        self.ever: set[str] = set()
        """Topics subscribed at some point on this connection (the connection's `since` replays each once)."""
        self.overflowed = asyncio.Event()
        self._held: list[tuple[bytes, str, int | None]] | None = None
        self._cursor: bytes | None = None

    @property
    def cursor(self) -> str:
        """The cursor to pass back as `since` when reconnecting."""
        return format_cursor(self.positions)

    def place(self, topic: str, time_ns: int | None) -> None:
        """Set the position of a replayable topic (None: forget the topic, as after unsubscribing)."""
        if time_ns is None:
            self.positions.pop(topic, None)
        else:
            self.positions[topic] = time_ns
        self._cursor = None

    def offer(self, body: bytes, topic: str, time_ns: int | None) -> None:
        """Queue a topic message (held while a replay runs); overflowing the queue marks the client dropped."""
        if self.overflowed.is_set():
            return
        if self._held is not None:
            if len(self._held) >= self.capacity:
                self._overflow()
            else:
                self._held.append((body, topic, time_ns))
            return
        self.put(body, topic, time_ns)

    def put(self, body: bytes, topic: str, time_ns: int | None) -> None:
        """Queue a topic message now (replayed messages skip the hold), advancing the topic's position."""
        if self.overflowed.is_set():
            return
        position = self.positions.get(topic)
        if position is not None and time_ns is not None and time_ns > position:
            self.place(topic, time_ns)
        if self._cursor is None:
            self._cursor = b',"cursor":"' + self.cursor.encode() + b'"}'
        self._enqueue(body[:-1] + self._cursor)

    def control(self, type_: str, data: Any, *, cursor: bool = False) -> None:
        """Queue a message that is about the connection itself (errors, acknowledgements)."""
        body: dict[str, Any] = {"type": type_, "data": data}
        if cursor:
            body["cursor"] = self.cursor
        self._enqueue(_encoder.encode(body))

    def reply(self, body: dict[str, Any]) -> None:
        """Queue an arbitrary JSON object (the answer to a ping)."""
        self._enqueue(_encoder.encode(body))

    def hold(self) -> None:
        """Keep live messages aside while a replay is queued, so replayed ones come first."""
        self._held = []

    def release(self) -> None:
        """Queue the live messages held during a replay."""
        held, self._held = self._held or [], None
        for body, topic, time_ns in held:
            self.put(body, topic, time_ns)

    def _enqueue(self, data: bytes) -> None:
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self._overflow()

    def _overflow(self) -> None:
        self.overflowed.set()
        self._held = None
        while not self.queue.empty():  # free the memory now; the connection closes the socket
            self.queue.get_nowait()


class _Feed:
    """Something read from storage on behalf of several clients; runs while it has members."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.members: set[Client] = set()
        self.since_ns = hub.now()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"tocsin-ws-{type(self).__name__}")

    def poke(self) -> None:
        """Read again soon (several pokes before the read make one read)."""
        self._wake.set()

    def stop(self) -> None:
        self._task.cancel()

    def push(self, topic: str, type_: str, data: Any, time_ns: int | None) -> None:
        body = message(topic, type_, data)
        for member in list(self.members):
            member.offer(body, topic, time_ns)

    async def _run(self) -> None:
        while True:
            await self._wait()
            self._wake.clear()
            storage = self.hub.monitor.storage
            if storage is None:
                continue
            try:
                await self.refresh(storage)
            except Exception as error:  # a storage hiccup: the next poke reads again
                log.warning("tocsin-api: the WebSocket %s could not read storage: %r", type(self).__name__, error)

    async def _wait(self) -> None:
        await self._wake.wait()

    async def refresh(self, storage: StorageBackend) -> None:
        raise NotImplementedError


class LogFeed(_Feed):
    """The new log records matching one query, read once per `logs/written` event for all its clients.

    What is new is what has not been pushed yet, remembered by id for the last `SEEN_LOGS` records: ids are
    time keys, so a record another process stamped a little earlier than one already pushed has a smaller
    id, and it must still go out (within the `LOG_SLACK_NS` the query looks back).
    """

    def __init__(self, hub: Hub, query: str) -> None:
        self.query = query
        self.newest_ns = 0
        self.seen: collections.OrderedDict[object, None] = collections.OrderedDict()
        super().__init__(hub)
        self.newest_ns = self.since_ns

    async def refresh(self, storage: StorageBackend) -> None:
        start = max(self.since_ns, self.newest_ns - LOG_SLACK_NS)
        page = await storage.search_logs(LogQuery(text=self.query, start_ns=start, limit=PUSH_LIMIT))
        self.hub.reads += 1
        fresh = [hit.record for hit in reversed(page.items) if _log_key(hit.record) not in self.seen]
        if not fresh:
            return
        for record in fresh:
            self.seen[_log_key(record)] = None
        while len(self.seen) > SEEN_LOGS:
            self.seen.popitem(last=False)
        self.newest_ns = max(self.newest_ns, *(record.time_ns for record in fresh))
        truncated = page.next_cursor is not None and len(fresh) == len(page.items)
        self.push("logs", "records", {"records": fresh, "truncated": truncated}, max(r.time_ns for r in fresh))


def _log_key(record: LogRecord) -> object:
    return record.id if record.id is not None else (record.time_ns, record.service, record.message)


def _span_key(span: Span) -> tuple[str, str, int | None]:
    return span.trace_id, span.span_id, span.end_ns


class TraceFeed(_Feed):
    """Spans written since the feed began (a running span again when it ends), read once per `traces/written`."""

    def __init__(self, hub: Hub) -> None:
        self.seen: collections.OrderedDict[tuple[str, str, int | None], None] = collections.OrderedDict()
        super().__init__(hub)

    async def refresh(self, storage: StorageBackend) -> None:
        page = await storage.search_spans(SpanQuery(start_ns=self.hub.now() - TRACE_LOOKBACK_NS, limit=PUSH_LIMIT))
        self.hub.reads += 1
        fresh = [span for span in reversed(page.items) if _span_key(span) not in self.seen
                 and (span.end_ns if span.end_ns is not None else span.start_ns) >= self.since_ns]
        if not fresh:
            return
        for span in fresh:
            self.seen[_span_key(span)] = None
        while len(self.seen) > SEEN_SPANS:
            self.seen.popitem(last=False)
        truncated = page.next_cursor is not None and len(fresh) == len(page.items)
        self.push("traces", "spans", {"spans": fresh, "truncated": truncated}, max(s.start_ns for s in fresh))


class MetricFeed(_Feed):
    """A metric's last minute, all series merged, queried every `ws_snapshot_interval` (and when a client joins)."""

    def __init__(self, hub: Hub, name: str, aggregate: str) -> None:
        self.name = name
        self.aggregate = aggregate
        self.interval_s = float(hub.monitor.config.server.ws_snapshot_interval)
        super().__init__(hub)
        self.poke()

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval_s)

    async def refresh(self, storage: StorageBackend) -> None:
        end = self.hub.now()
        query = MetricQuery(name=self.name, start_ns=end - METRIC_WINDOW_NS, end_ns=end, aggregate=self.aggregate,
                            step_s=METRIC_STEP_S, by=[])  # type: ignore[arg-type]
        series = await storage.query_metrics(query)
        self.hub.reads += 1
        points = [point for s in series for point in s.points]
        self.push(f"{METRICS}{self.name}", "snapshot", {
            "name": self.name, "aggregate": self.aggregate, "start_ns": query.start_ns, "end_ns": end,
            "step_s": METRIC_STEP_S, "points": points,
        }, None)  # fmt: skip


def check_aggregate(aggregate: str) -> None:
    """QueryError unless `aggregate` is one a metric query takes."""
    check_query(MetricQuery(name="x", start_ns=0, end_ns=1, aggregate=aggregate))  # type: ignore[arg-type]


class Hub:
    """Every WebSocket client of one monitor, the bus subscription they share, and the storage feeds."""

    _hubs: weakref.WeakKeyDictionary[Monitor, Hub] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, monitor: Monitor) -> Hub:
        """The monitor's hub (made on first use)."""
        hub = cls._hubs.get(monitor)
        if hub is None:
            hub = cls._hubs[monitor] = cls(monitor)
        return hub

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.clients: set[Client] = set()
        self.dropped = 0
        """Clients closed because their queue overflowed."""
        self.reads = 0
        """Storage reads made by the shared feeds (one per feed and event, whatever the number of clients)."""
        self._subscription: Subscription | None = None
        self._pump: asyncio.Task[None] | None = None
        self._logs: dict[str, LogFeed] = {}
        self._traces: TraceFeed | None = None
        self._metrics: dict[tuple[str, str], MetricFeed] = {}

    def now(self) -> int:
        return self.monitor.clock.now_ns()

    @property
    def running(self) -> bool:
        """True while the hub holds a bus subscription (while it has clients)."""
        return self._pump is not None

    @property
    def feeds(self) -> int:
        """How many storage feeds run (log queries, traces, metric snapshots)."""
        return len(self._logs) + len(self._metrics) + (self._traces is not None)

    # -- clients ------------------------------------------------------------------------------------------

    def join(self, client: Client) -> None:
        """Start delivering to `client` (its topics come with `subscribe`)."""
        self.clients.add(client)
        if self._pump is None:
            subscription = self.monitor.events.subscribe(TOPICS, maxsize=max(BUS_BUFFER,
                                                                              self.monitor.config.server.ws_queue))
            self._subscription = subscription
            self._pump = asyncio.create_task(self._run(subscription), name="tocsin-ws-hub")

    def leave(self, client: Client) -> None:
        """Forget `client`; with no clients left, the bus subscription is closed and every feed stopped."""
        for topic in list(client.topics):
            self.unsubscribe(client, topic)
        self.clients.discard(client)
        if not self.clients and self._pump is not None:
            self._pump.cancel()
            self._pump = None
            if self._subscription is not None:
                self._subscription.close()
                self._subscription = None

    def subscribe(self, client: Client, topic: str, *, query: str = "", aggregate: str = "avg",
                  since_ns: int | None = None) -> None:
        """Add `topic` to what `client` gets (a changed query or aggregate moves it to the matching feed)."""
        if topic == "logs":
            if "logs" in client.topics and client.log_query != query:
                self._detach(client, "logs")
            feed = self._logs.get(query)
            if feed is None:
                feed = self._logs[query] = LogFeed(self, query)
            feed.members.add(client)
            client.log_query = query
        elif topic == "traces":
            if self._traces is None:
                self._traces = TraceFeed(self)
            self._traces.members.add(client)
        elif topic.startswith(METRICS):
            name = topic[len(METRICS):]
            if topic in client.topics and client.aggregates.get(name) != aggregate:
                self._detach(client, topic)
            metric = self._metrics.get((name, aggregate))
            if metric is None:
                metric = self._metrics[(name, aggregate)] = MetricFeed(self, name, aggregate)
            elif client not in metric.members:
                metric.poke()  # a snapshot for the newcomer now rather than at the next tick
            metric.members.add(client)
            client.aggregates[name] = aggregate
        client.topics.add(topic)
        client.ever.add(topic)
        if topic in REPLAYABLE and (topic not in client.positions or since_ns is not None):
            client.place(topic, self.now() if since_ns is None else since_ns)

    def unsubscribe(self, client: Client, topic: str) -> None:
        """Stop sending `topic` to `client`."""
        if topic not in client.topics:
            return
        self._detach(client, topic)
        client.topics.discard(topic)
        client.place(topic, None)

    def _detach(self, client: Client, topic: str) -> None:
        if topic == "logs":
            feed = self._logs.get(client.log_query)
            if feed is not None:
                feed.members.discard(client)
                if not feed.members:
                    feed.stop()
                    del self._logs[client.log_query]
            client.log_query = ""
        elif topic == "traces" and self._traces is not None:
            self._traces.members.discard(client)
            if not self._traces.members:
                self._traces.stop()
                self._traces = None
        elif topic.startswith(METRICS):
            name = topic[len(METRICS):]
            key = (name, client.aggregates.pop(name, "avg"))
            metric = self._metrics.get(key)
            if metric is not None:
                metric.members.discard(client)
                if not metric.members:
                    metric.stop()
                    del self._metrics[key]

    # -- the bus ------------------------------------------------------------------------------------------

    async def _run(self, subscription: Subscription) -> None:
        while True:
            first = await subscription.get()
            for event in [first, *subscription.drain()]:
                try:
                    self._dispatch(event.topic, event.type, event.data, event.time_ns)
                except Exception as error:  # one odd event must not stop the hub
                    log.warning("tocsin-api: the WebSocket hub could not deliver a %s/%s event: %r",
                                event.topic, event.type, error)

    def _dispatch(self, topic: str, type_: str, data: Any, time_ns: int) -> None:
        if topic == "logs":
            if type_ == "written":
                for feed in self._logs.values():
                    feed.poke()
            return
        if topic == "traces":
            if type_ == "written" and self._traces is not None:
                self._traces.poke()
            return
        wanting = [client for client in self.clients if topic in client.topics]
        if not wanting:
            return
        body = message(topic, type_, data)
        for client in wanting:
            client.offer(body, topic, time_ns)

    # -- replay -------------------------------------------------------------------------------------------

    async def replay(self, client: Client, since: dict[str, int], query: str) -> tuple[dict[str, int], list[str]]:
        """Queue what `client` missed on each topic after `since[topic]`, oldest first across topics; returns
        how many items each topic replayed and which topics had more than REPLAY_LIMIT (the newest are sent)."""
        storage = self.monitor.storage
        if storage is None or not since:
            return {}, []
        now = self.now()
        items: list[tuple[int, str, bytes]] = []
        counts: dict[str, int] = {}
        truncated: list[str] = []
        for topic, start in sorted(since.items()):
            clipped = start < now - REPLAY_WINDOW_NS
            start = max(start, now - REPLAY_WINDOW_NS)
            if start >= now:  # nothing can have been missed after now
                counts[topic] = 0
                continue
            found, more = await getattr(self, f"_replay_{topic}")(storage, start, now, query)
            counts[topic] = sum(n for _, _, _, n in found)
            if more or clipped:
                truncated.append(topic)
            items.extend((time_ns, topic, body) for time_ns, topic, body, _ in found)
        items.sort(key=lambda item: item[0])
        for time_ns, topic, body in items:
            client.put(body, topic, time_ns)
        return counts, truncated

    async def _replay_alerts(self, storage: StorageBackend, start: int, now: int, query: str
                             ) -> tuple[list[tuple[int, str, bytes, int]], bool]:
        transitions = await storage.transitions_between(_after(start), _after(now))
        more = len(transitions) > REPLAY_LIMIT
        return [(t.time_ns, "alerts", message("alerts", t.to_state, t, replayed=True), 1)
                for t in transitions[-REPLAY_LIMIT:]], more

    async def _replay_logs(self, storage: StorageBackend, start: int, now: int, query: str
                           ) -> tuple[list[tuple[int, str, bytes, int]], bool]:
        page = await storage.search_logs(LogQuery(text=query, start_ns=_after(start), limit=REPLAY_LIMIT))
        records = [hit.record for hit in reversed(page.items)]
        chunks = [records[i:i + CHUNK] for i in range(0, len(records), CHUNK)]
        return [(chunk[-1].time_ns, "logs", message("logs", "records", {"records": chunk, "truncated": False},
                                                    replayed=True), len(chunk)) for chunk in chunks], \
            page.next_cursor is not None

    async def _replay_traces(self, storage: StorageBackend, start: int, now: int, query: str
                             ) -> tuple[list[tuple[int, str, bytes, int]], bool]:
        page = await storage.search_spans(SpanQuery(start_ns=_after(start), limit=REPLAY_LIMIT))
        spans = list(reversed(page.items))
        chunks = [spans[i:i + CHUNK] for i in range(0, len(spans), CHUNK)]
        return [(max(s.start_ns for s in chunk), "traces", message("traces", "spans", {"spans": chunk,
                                                                                       "truncated": False},
                                                                 replayed=True), len(chunk)) for chunk in chunks], \
            page.next_cursor is not None

    async def _replay_health(self, storage: StorageBackend, start: int, now: int, query: str
                             ) -> tuple[list[tuple[int, str, bytes, int]], bool]:
        results = []
        for component in self.monitor.health.status().components:
            results.extend(await storage.health_history(component.name, start_ns=_after(start),
                                                        limit=REPLAY_LIMIT))
        results.sort(key=lambda result: result.time_ns)
        more = len(results) > REPLAY_LIMIT
        return [(r.time_ns, "health", message("health", "result", r, replayed=True), 1)
                for r in results[-REPLAY_LIMIT:]], more

    async def _replay_workflows(self, storage: StorageBackend, start: int, now: int, query: str
                                ) -> tuple[list[tuple[int, str, bytes, int]], bool]:
        page = await storage.list_executions(ExecutionQuery(start_ns=_after(start, WORKFLOW_LOOKBACK_NS),
                                                            limit=REPLAY_LIMIT))
        runs = [run for run in reversed(page.items)
                if run.started_ns > start or (run.ended_ns is not None and run.ended_ns > start)]
        return [(max(run.started_ns, run.ended_ns or run.started_ns), "workflows",
                 message("workflows", "execution", run, replayed=True), 1) for run in runs], \
            page.next_cursor is not None
