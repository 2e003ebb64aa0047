"""A bounded, thread-safe FIFO between recording calls and the flusher.

The bound is a memory budget (`max_bytes`, from a size like "64MiB") or a number of items. A memory budget
becomes a number of items through the measured size of what is queued: each drain weighs a few of the
drained items (`measure`, by default `approx_size`) and keeps a running average, so the hot path only compares a length.

When the buffer is full, `overflow` decides: `"drop"` (the default) drops the new item and counts it, never
making the caller wait; `"block"` makes the calling thread wait until the flusher drains (for batch jobs where
every record matters). A thread cannot wait for itself: calls made on the flusher's own thread (an async app
logging on its event loop), or while no flusher runs, drop as with `"drop"`. The first drop is reported once
through `on_first_drop`. When the buffer reaches `batch_size` items, `on_batch` is called so the flusher can
write early instead of waiting.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

from tocsin.values import BufferSize

T = TypeVar("T")

SAMPLE = 16  # items weighed per drain
MEMO_DEPTH = 3  # how deep approx_size follows containers and slots


def approx_size(value: object, depth: int = MEMO_DEPTH) -> int:
    """Roughly the bytes `value` holds: its own size plus what its containers hold, `depth` levels down, and
    for an object with slots (a span, a workflow run) the plain data in its slots; other objects it refers
    to (a parent span, the tracer) belong to someone else and count only their own size."""
    size = sys.getsizeof(value)
    kind = type(value)
    if depth <= 0 or kind in _LEAVES:
        return size
    if kind is dict:
        return size + sum(approx_size(key, 0) + approx_size(item, depth - 1) for key, item in value.items())
    if kind in _SEQUENCES:
        return size + sum(approx_size(item, depth - 1) for item in value)
    if depth == MEMO_DEPTH:
        for name in getattr(kind, "__slots__", ()):
            item = getattr(value, name, None)
            if type(item) in _LEAVES or type(item) in _SEQUENCES or type(item) is dict:
                size += approx_size(item, depth - 1)
    return size


_LEAVES = frozenset({str, int, float, bool, bytes, type(None)})
_SEQUENCES = frozenset({list, tuple, set, frozenset})


class BoundedBuffer(Generic[T]):
    """Items waiting to be written to storage."""

    __slots__ = ("_cond", "_items", "_waiting", "batch_size", "blocked", "capacity", "consumer_thread", "dropped",
                 "item_bytes", "max_bytes", "measure", "name", "on_batch", "on_first_drop", "overflow", "waitable")

    def __init__(
        self,
        name: str,
        capacity: int | None = None,
        *,
        max_bytes: int | None = None,
        item_bytes: int = 512,
        measure: Callable[[T], int] = approx_size,
        overflow: Literal["drop", "block"] = "drop",
        batch_size: int | None = None,
        on_batch: Callable[[], None] | None = None,
        on_first_drop: Callable[[str], None] | None = None,
    ) -> None:
        if (capacity is None) == (max_bytes is None):
            raise ValueError("a buffer is bounded by either capacity (items) or max_bytes, not both or neither")
        if (capacity if capacity is not None else max_bytes or 0) < 1:
            raise ValueError(f"buffer capacity must be at least 1, got {capacity or max_bytes}")
        self.name = name
        self.max_bytes = max_bytes
        self.item_bytes = item_bytes
        self.measure = measure
        self.batch_size = batch_size or capacity or 1
        self.capacity = capacity if capacity is not None else self._fit()
        self.overflow = overflow
        self.on_batch = on_batch
        self.on_first_drop = on_first_drop
        self.dropped = 0
        self.blocked = 0
        """Times a caller waited for the flusher because the buffer was full (`overflow = "block"`)."""
        self.waitable = False
        """Set while a flusher runs, so that `"block"` has something to wait for."""
        self.consumer_thread: int | None = None
        """The flusher's thread, which must never wait for itself."""
        self._items: deque[T] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0

    def __len__(self) -> int:
        return len(self._items)

    def _fit(self) -> int:
        """Items of the measured average size that fit in `max_bytes` (never fewer than one batch)."""
        assert self.max_bytes is not None
        return max(self.batch_size, self.max_bytes // max(self.item_bytes, 1))

    def put(self, item: T) -> bool:
        """Queue one item; when full, wait (`block`) or drop it and return False (`drop`)."""
        items = self._items
        size = len(items)
        if size >= self.capacity:
            return self._full(item)
        items.append(item)
        if size + 1 == self.batch_size and self.on_batch is not None:
            self.on_batch()
        return True

    def _full(self, item: T) -> bool:
        if self.overflow == "block" and self.waitable and threading.get_ident() != self.consumer_thread:
            with self._cond:
                self.blocked += 1
                self._waiting += 1
                try:
                    if self.on_batch is not None:
                        self.on_batch()
                    while len(self._items) >= self.capacity and self.waitable:
                        self._cond.wait(0.1)
                finally:
                    self._waiting -= 1
                if len(self._items) < self.capacity:
                    self._items.append(item)
                    return True
        self.dropped += 1
        if self.dropped == 1 and self.on_first_drop is not None:
            bound = f"{self.max_bytes / 2**20:g} MiB" if self.max_bytes else f"{self.capacity} items"
            self.on_first_drop(f"{self.name} buffer is full ({bound}); dropping new items until it drains")
        return False

    def drain(self, limit: int | None = None) -> list[T]:
        """Remove and return up to `limit` items (all by default), oldest first; waiting callers go on."""
        items = self._items
        count = len(items) if limit is None else min(limit, len(items))
        popleft = items.popleft
        drained = [popleft() for _ in range(count)]
        if self._waiting:
            with self._cond:
                self._cond.notify_all()
        if self.max_bytes is not None and drained:
            step = max(1, len(drained) // SAMPLE)
            sample = drained[::step][:SAMPLE]
            measured = sum(map(self.measure, sample)) / len(sample)
            self.item_bytes = int(0.7 * self.item_bytes + 0.3 * measured) if self.item_bytes else int(measured)
            self.capacity = self._fit()
        return drained

    def stop_waiting(self) -> None:
        """No flusher any more: callers waiting on a full buffer drop instead, and later ones do not wait."""
        self.waitable = False
        with self._cond:
            self._cond.notify_all()

    def drop_note(self, section: str) -> str | None:
        """What a person reads at close when items were dropped: how many, and which setting to change."""
        if not self.dropped:
            return None
        bound = f'"{self.max_bytes / 2**20:g}MiB"' if self.max_bytes else str(self.capacity)
        return (f"{self.dropped:,} {self.name} were dropped because the buffer was full ([{section}] buffer_size = "
                f'{bound}, overflow = "{self.overflow}"): set [{section}] overflow = "block" to make the recording '
                "thread wait for the writer instead, or raise buffer_size")


def sized_buffer(
    name: str,
    size: BufferSize,
    overflow: Literal["drop", "block"],
    *,
    item_bytes: int,
    batch_size: int,
    measure: Callable[[Any], int] = approx_size,
    on_batch: Callable[[], None] | None = None,
    on_first_drop: Callable[[str], None] | None = None,
) -> BoundedBuffer[Any]:
    """A buffer bounded as a config `buffer_size` says: in memory ("64MiB") or in records (a plain number)."""
    records = size.records
    return BoundedBuffer(name, records, max_bytes=size.bytes, item_bytes=item_bytes, measure=measure,
                         overflow=overflow,
                         batch_size=min(batch_size, records or batch_size), on_batch=on_batch,
                         on_first_drop=on_first_drop)
