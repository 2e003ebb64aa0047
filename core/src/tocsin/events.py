"""The in-process event bus: services publish what changed; the API's WebSockets and tests subscribe.

Publishing never blocks and never fails because of a subscriber: each subscription has a bounded queue,
and a subscriber that falls behind loses its oldest events (counted in `dropped`), not the publisher's time.
`publish` is safe from any thread.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Iterable

from tocsin.models import Event


class Subscription:
    """A bounded stream of events on some topics; iterate it with `async for` or call `get()`."""

    def __init__(self, bus: EventBus, topics: frozenset[str] | None, maxsize: int) -> None:
        self.topics = topics
        self.dropped = 0
        self._bus = bus
        self._events: collections.deque[Event] = collections.deque(maxlen=maxsize)
        self._ready = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.closed = False

    def wants(self, topic: str) -> bool:
        """True when this subscription listens to `topic`."""
        return self.topics is None or topic in self.topics

    def _push(self, event: Event) -> None:
        with self._ready:
            if len(self._events) == self._events.maxlen:
                self.dropped += 1
            self._events.append(event)
            self._ready.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, flag in waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # the subscriber's loop is closed
                pass

    def get_nowait(self) -> Event | None:
        """The next event, or None when there is none yet."""
        with self._ready:
            return self._events.popleft() if self._events else None

    def drain(self) -> list[Event]:
        """Every event waiting now, oldest first."""
        with self._ready:
            events = list(self._events)
            self._events.clear()
            return events

    async def get(self) -> Event:
        """Wait for the next event (wrap in `asyncio.timeout` to bound the wait)."""
        while True:
            flag = asyncio.Event()
            with self._ready:
                if self._events:
                    return self._events.popleft()
                self._waiters.append((asyncio.get_running_loop(), flag))
            await flag.wait()

    def wait(self, timeout: float | None = None) -> Event | None:
        """Block the calling thread until an event arrives; None on timeout."""
        with self._ready:
            if not self._events:
                self._ready.wait(timeout)
            return self._events.popleft() if self._events else None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self.closed:
            raise StopAsyncIteration
        return await self.get()

    def close(self) -> None:
        """Stop receiving events."""
        self.closed = True
        self._bus._remove(self)


class EventBus:
    """Fan-out of events to subscriptions, by topic."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        self.published = 0

    def subscribe(self, topics: Iterable[str] | None = None, *, maxsize: int = 1000) -> Subscription:
        """Listen to some topics (all when None); keeps at most `maxsize` unread events."""
        subscription = Subscription(self, frozenset(topics) if topics is not None else None, maxsize)
        with self._lock:
            self._subscriptions = [*self._subscriptions, subscription]
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s is not subscription]

    def publish(self, event: Event) -> None:
        """Deliver an event to every subscription that wants its topic."""
        self.published += 1
        for subscription in self._subscriptions:
            if subscription.wants(event.topic):
                subscription._push(event)
