"""A mergeable relative-error quantile sketch (DDSketch-style logarithmic buckets).

Every value v > 0 lands in bucket ceil(log_gamma(v)); the bucket's representative value is within
`relative_accuracy` of every value in it, so any quantile read back is within that relative error of a
true sample at the same rank. Two sketches with the same gamma merge by adding bucket counts, which is
how a P99 over a day is computed from per-interval rollups without reading raw points.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import accumulate, repeat
from operator import add, mul, sub

from tocsin.models import Sketch

DEFAULT_RELATIVE_ACCURACY = 0.01


def gamma_for(relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> float:
    """The bucket growth factor that guarantees `relative_accuracy`."""
    if not 0 < relative_accuracy < 1:
        raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy}")
    return (1 + relative_accuracy) / (1 - relative_accuracy)


class LogSketch:
    """An in-memory sketch: add values, merge other sketches, read quantiles."""

    __slots__ = ("_inv_log2_gamma", "count", "gamma", "negative", "positive", "zeros")

    def __init__(self, gamma: float | None = None) -> None:
        self.gamma = gamma or gamma_for()
        # Keys are ceil(log2(v) / log2(gamma)): math.log2 is about twice as fast as math.log here.
        self._inv_log2_gamma = 1.0 / math.log2(self.gamma)
        # Counters (still dicts) so add_many can count bucket keys in C with Counter.update.
        self.positive: Counter[int] = Counter()
        self.negative: Counter[int] = Counter()
        self.zeros = 0
        self.count = 0

    def add(self, value: float) -> None:
        """Record one value."""
        self.count += 1
        if value > 0:
            key = math.ceil(math.log2(value) * self._inv_log2_gamma)
            buckets = self.positive
        elif value < 0:
            key = math.ceil(math.log2(-value) * self._inv_log2_gamma)
            buckets = self.negative
        else:
            self.zeros += 1
            return
        buckets[key] = buckets.get(key, 0) + 1

    def add_many(self, values: Sequence[float]) -> None:
        """Record a batch of values exactly as `add` would one by one, but faster (the loops run in C)."""
        try:
            self._count_keys(self.positive, values)
        except ValueError:  # math.log2 refused a zero or negative value: split the batch by sign
            positive = [value for value in values if value > 0]
            negative = [-value for value in values if value < 0]
            self._count_keys(self.positive, positive)
            self._count_keys(self.negative, negative)
            zeros = len(values) - len(positive) - len(negative)
            self.zeros += zeros
            self.count += zeros

    def _count_keys(self, buckets: Counter[int], magnitudes: Sequence[float]) -> None:
        # All keys are computed before any is counted, so a ValueError leaves the sketch unchanged.
        keys = list(map(math.ceil, map(mul, map(math.log2, magnitudes), repeat(self._inv_log2_gamma))))
        buckets.update(keys)
        self.count += len(keys)

    def merge(self, other: LogSketch | Sketch) -> None:
        """Add another sketch's counts into this one; both must share gamma."""
        if not math.isclose(other.gamma, self.gamma, rel_tol=1e-12):
            raise ValueError(f"cannot merge sketches with gamma {other.gamma} and {self.gamma}")
        for mine, theirs in ((self.positive, other.positive), (self.negative, other.negative)):
            if not theirs:
                continue
            if mine:  # new counts computed and stored by C-level loops (map, zip, dict.update)
                keys = theirs.keys()
                dict.update(mine, zip(keys, map(add, map(mine.get, keys, repeat(0)), theirs.values()), strict=True))
            else:
                mine.update(theirs)  # an empty side takes the other's counts in one C-level call
            self.count += sum(theirs.values())
        self.zeros += other.zeros
        self.count += other.zeros

    def subtract(self, other: LogSketch | Sketch) -> None:
        """Take away counts that an earlier `merge` of `other` added (a window sliding past it); exact, since
        counts are integers. Buckets that reach zero are removed."""
        if not math.isclose(other.gamma, self.gamma, rel_tol=1e-12):
            raise ValueError(f"cannot subtract a sketch with gamma {other.gamma} from one with {self.gamma}")
        for mine, theirs in ((self.positive, other.positive), (self.negative, other.negative)):
            keys = theirs.keys()
            left = list(map(sub, map(mine.get, keys, repeat(0)), theirs.values()))
            if min(left, default=0) < 0:
                raise ValueError("cannot subtract counts that were never merged into this sketch")
            dict.update(mine, zip(keys, left, strict=True))
            for key in [key for key, n in zip(keys, left, strict=True) if not n]:
                del mine[key]
            self.count -= sum(theirs.values())
        self.zeros -= other.zeros
        self.count -= other.zeros

    def _value(self, key: int) -> float:
        return 2.0 * self.gamma**key / (self.gamma + 1.0)

    def quantile(self, q: float) -> float | None:
        """The value at quantile q in [0, 1] (rank q·(n-1), lower), or None when empty."""
        if self.count == 0:
            return None
        if not 0 <= q <= 1:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        rank = q * (self.count - 1)
        key, seen = _passing(self.negative, sorted(self.negative, reverse=True), rank)
        if key is not None:
            return -self._value(key)
        seen += self.zeros
        if seen > rank:
            return 0.0
        key, _ = _passing(self.positive, sorted(self.positive), rank - seen)
        return self._value(max(self.positive) if key is None else key)  # None: float rounding at q=1

    def to_model(self) -> Sketch:
        """The stored form."""
        return Sketch(gamma=self.gamma, positive=dict(self.positive), negative=dict(self.negative),
                      zeros=self.zeros)

    @classmethod
    def from_model(cls, model: Sketch) -> LogSketch:
        """Rebuild an in-memory sketch from its stored form."""
        sketch = cls(model.gamma)
        sketch.merge(model)
        return sketch


def _passing(buckets: Mapping[int, int], keys: list[int], rank: float) -> tuple[int | None, int]:
    """The first of `keys` whose running bucket count exceeds `rank` (None if none does), and their total."""
    running = list(accumulate(map(buckets.__getitem__, keys)))  # C loops: no per-bucket bytecode
    index = bisect_right(running, rank)
    return (keys[index] if index < len(keys) else None), (running[-1] if running else 0)
