"""A bounded, thread-safe FIFO between recording calls and the flusher.

`put` never blocks and never grows the buffer past its capacity: when full, the item is dropped and
counted, and the first drop is reported once through `on_first_drop`. When the buffer reaches
`batch_size` items, `on_batch` is called so the flusher can write early instead of waiting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BoundedBuffer(Generic[T]):
    """Items waiting to be written to storage."""

    __slots__ = ("_items", "batch_size", "capacity", "dropped", "name", "on_batch", "on_first_drop")

    def __init__(
        self,
        name: str,
        capacity: int,
        *,
        batch_size: int | None = None,
        on_batch: Callable[[], None] | None = None,
        on_first_drop: Callable[[str], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be at least 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self.batch_size = batch_size or capacity
        self.on_batch = on_batch
        self.on_first_drop = on_first_drop
        self.dropped = 0
        self._items: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> bool:
        """Queue one item; False (and counted) when the buffer is full."""
        items = self._items
        size = len(items)
        if size >= self.capacity:
            self._drop()
            return False
        items.append(item)
        if size + 1 == self.batch_size and self.on_batch is not None:
            self.on_batch()
        return True

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1 and self.on_first_drop is not None:
            self.on_first_drop(
                f"{self.name} buffer is full ({self.capacity} items); dropping new items until it drains"
            )

    def drain(self, limit: int | None = None) -> list[T]:
        """Remove and return up to `limit` items (all by default), oldest first."""
        items = self._items
        count = len(items) if limit is None else min(limit, len(items))
        popleft = items.popleft
        return [popleft() for _ in range(count)]
