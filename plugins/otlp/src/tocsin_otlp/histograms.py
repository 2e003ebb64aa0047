"""OTLP histogram points as tocsin sketches: explicit buckets and exponential buckets alike.

tocsin keeps a histogram as count, sum, min, max and a mergeable log sketch (relative error 1%). An OTLP point
carries only bucket counts, so each bucket's count is put at one representative value:

- explicit buckets (lo, hi]: the midpoint, where the open first and last buckets are closed by the point's
  `min` / `max` (else by their one finite bound), and clamped to [min, max] when those are sent. A quantile
  read back is therefore within half a bucket width (plus the sketch's 1%) of the true one;
- exponential buckets (base^i, base^(i+1)] with base = 2^(2^-scale): the geometric midpoint, so a quantile
  is within a relative error of (sqrt(base) - 1) plus the sketch's 1% (about 4.4% more at scale 3).

Count and sum are the point's own (exact); a point without `sum` gets the sum of the representative values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

from tocsin.ext import LogSketch, Sketch

GAMMA = LogSketch().gamma
_INV_LOG2_GAMMA = 1.0 / math.log2(GAMMA)


class Shape(NamedTuple):
    """One histogram's observations as tocsin keeps them: exact count and sum, min, max and sketch buckets."""

    count: int
    sum: float
    min: float
    max: float
    positive: dict[int, int]
    negative: dict[int, int]
    zeros: int

    def sketch(self) -> Sketch:
        """The stored sketch of these buckets."""
        return Sketch(gamma=GAMMA, positive=self.positive, negative=self.negative, zeros=self.zeros)

    def minus(self, earlier: Shape) -> Shape:
        """What was observed after `earlier` (a cumulative point of the same series), min and max estimated
        from the buckets that grew, within this point's lifetime [min, max]."""
        positive = _difference(self.positive, earlier.positive)
        negative = _difference(self.negative, earlier.negative)
        values = [*(-_value(key) for key in negative), *((0.0,) if self.zeros > earlier.zeros else ()),
                  *map(_value, positive)]
        low = max(self.min, min(values)) if values else self.min
        high = min(self.max, max(values)) if values else self.max
        return Shape(self.count - earlier.count, self.sum - earlier.sum, low, high, positive, negative,
                     max(0, self.zeros - earlier.zeros))


def _key(magnitude: float) -> int:
    return math.ceil(math.log2(magnitude) * _INV_LOG2_GAMMA)


def _value(key: int) -> float:
    return 2.0 * GAMMA**key / (GAMMA + 1.0)


def _difference(later: dict[int, int], earlier: dict[int, int]) -> dict[int, int]:
    return {key: n - earlier.get(key, 0) for key, n in later.items() if n > earlier.get(key, 0)}


def _shape(weighted: Iterable[tuple[float, int]], point: Any) -> Shape:
    """A Shape from (representative value, count) pairs and the point's count, sum, min and max."""
    positive: dict[int, int] = {}
    negative: dict[int, int] = {}
    zeros = 0
    total = 0.0
    low, high = math.inf, -math.inf
    for value, n in weighted:
        if n <= 0:
            continue
        total += value * n
        low, high = min(low, value), max(high, value)
        if value > 0:
            key = _key(value)
            positive[key] = positive.get(key, 0) + n
        elif value < 0:
            key = _key(-value)
            negative[key] = negative.get(key, 0) + n
        else:
            zeros += n
    low = point.min if point.HasField("min") else (low if low != math.inf else 0.0)
    high = point.max if point.HasField("max") else (high if high != -math.inf else 0.0)
    return Shape(point.count, point.sum if point.HasField("sum") else total, low, high, positive, negative, zeros)


def explicit(point: Any) -> Shape:
    """A HistogramDataPoint with explicit bounds as a Shape."""
    bounds = list(point.explicit_bounds)
    counts = list(point.bucket_counts)
    if len(counts) != len(bounds) + 1 and counts:
        raise ValueError(f"a histogram point has {len(counts)} bucket counts for {len(bounds)} bounds "
                         f"(expected {len(bounds) + 1})")
    low = point.min if point.HasField("min") else None
    high = point.max if point.HasField("max") else None
    reps = []
    for index in range(len(counts)):
        lo = bounds[index - 1] if index else (low if low is not None else bounds[0] if bounds else 0.0)
        hi = bounds[index] if index < len(bounds) else (high if high is not None else lo)
        value = (lo + hi) / 2
        if low is not None:
            value = max(value, low)
        if high is not None:
            value = min(value, high)
        reps.append(value)
    return _shape(zip(reps, counts, strict=True), point)


def exponential(point: Any) -> Shape:
    """An ExponentialHistogramDataPoint as a Shape (OverflowError for buckets beyond float range)."""
    step = 2.0 ** -point.scale

    def side(buckets: Any, sign: float) -> Iterable[tuple[float, int]]:
        offset = buckets.offset
        return ((sign * 2.0 ** ((offset + i + 0.5) * step), n) for i, n in enumerate(buckets.bucket_counts))

    pairs = [*side(point.negative, -1.0), (0.0, point.zero_count), *side(point.positive, 1.0)]
    return _shape(pairs, point)
