"""Random metric data and rules for the streaming tests (`test_streaming_eval`, `test_streaming_warmup`), which
hold `MetricWindows` equal to the storage query on the same data."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.models import AGGREGATES, MetricRollup
from tocsin.signals.sketch import LogSketch
from tocsin.storage.protocol import StorageBackend

S = 1_000_000_000
T0 = 1_700_000_000 * S
KINDS = {"gauge_m": "gauge", "counter_m": "counter", "hist_m": "histogram"}
WINDOWS = [10, 60, 95, 300, 600]


def random_rollups(rng: random.Random, first_s: int, last_s: int, most_series: int = 8) -> list[MetricRollup]:
    """Rollups of a gauge, a counter and a histogram every 10 s in [T0 + first_s, T0 + last_s), 3 to
    `most_series` series each, with gaps, random label sets, and negative and zero values."""
    out = []
    for name, kind in KINDS.items():
        for instance in range(rng.randint(3, most_series)):
            labels = {"instance": f"i{instance}", "group": f"g{instance % 3}"}
            if rng.random() < 0.3:
                labels["zone"] = rng.choice(["a", "b"])
            for start_s in range(first_s, last_s, 10):
                if rng.random() < 0.15:
                    continue  # a gap
                values = [rng.choice([0.0, -rng.random(), rng.lognormvariate(0, 1)]) for _ in range(rng.randint(1, 6))]
                sketch = LogSketch()
                sketch.add_many(values)
                out.append(MetricRollup(
                    name=name, kind=kind, labels=labels, start_ns=T0 + start_s * S, interval_s=10.0,
                    count=len(values), sum=sum(values), min=min(values), max=max(values), last=values[-1],
                    sketch=sketch.to_model() if kind == "histogram" else None))
    return out


def random_rule(rng: random.Random, i: int, windows: list[int] = WINDOWS) -> dict:
    """A metric or absent rule on one of KINDS (or a metric nobody records): any aggregate, `=`/`!=`/`=~`/`!~`
    matchers, `by` groups."""
    matchers = []
    for _ in range(rng.randint(0, 2)):
        label = rng.choice(["instance", "group", "zone"])
        op = rng.choice(["=", "!=", "=~", "!~"])
        value = {"instance": f"i{rng.randint(0, 8)}", "group": f"g{rng.randint(0, 3)}",
                 "zone": rng.choice(["a", ""])}[label]
        if op in ("=~", "!~"):
            value = rng.choice([value, value[:1] + ".*", "i[0-4]|g1"])
        matchers.append(f'{label}{op}"{value}"')
    rule = {"name": f"r{i}", "metric": rng.choice([*KINDS, "missing_m"]), "window": rng.choice(windows),
            "matchers": matchers, "op": "gt", "threshold": 0}
    if rng.random() < 0.2:
        return {**rule, "kind": "absent"}
    by = rng.sample(["instance", "group", "zone"], rng.randint(0, 2))
    return {**rule, "aggregate": rng.choice(AGGREGATES), "by": by}


def same(a: float | None, b: float | None) -> bool:
    """Equal, or both None; sums to 1e-9 relative (the order of summation differs)."""
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


async def open_store(backend: str, tmp_path: Path) -> StorageBackend:
    """An opened memory store, or SQLite on a file in tmp_path."""
    if backend == "memory":
        storage: StorageBackend = MemoryStorage()
    else:
        sqlite = pytest.importorskip("tocsin_sqlite.storage")
        storage = sqlite.SQLiteStorage(sqlite.SQLiteStorage.Config(path=str(tmp_path / "streaming.db")))
    await storage.open()
    return storage
