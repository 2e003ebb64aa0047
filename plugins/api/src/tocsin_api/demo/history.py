"""The last minutes before the demo started, written straight to storage so charts are not empty on first load.

Metrics are stored as the rollups the flusher would have written (one per series per interval, latency
sketches included); traces and their logs for one request in `SAMPLE` plus every failed one.
"""

from __future__ import annotations

from collections import defaultdict

from tocsin import Monitor
from tocsin.ext import LogRecord, LogSketch, MetricRollup, Span
from tocsin_api.demo.shop import LATENCY, REQUESTS, USERS, Request, Shop, Timeline, active_users, arrivals

SAMPLE = 8
"""One ordinary request in this many keeps its trace in the seeded history."""


class Interval:
    """What the requests of one flush interval add up to, as the rollups the monitor would store."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latencies: dict[tuple[str, str], list[float]] = defaultdict(list)

    def add(self, request: Request) -> None:
        """Count one request and its latency."""
        self.counts[request.method, request.route, request.status] += 1
        self.latencies[request.method, request.route].append(request.seconds)

    def rollups(self, start_ns: int, interval_s: float, totals: dict[tuple[str, str, int], int],
                users: float) -> list[MetricRollup]:
        """Counter, histogram and gauge rollups of this interval; `totals` carries the counters' running totals."""
        out = [MetricRollup(name=USERS, kind="gauge", start_ns=start_ns, interval_s=interval_s, count=1, sum=users,
                            min=users, max=users, last=users)]
        for (method, route, status), count in self.counts.items():
            totals[method, route, status] += count
            out.append(MetricRollup(
                name=REQUESTS, kind="counter", labels={"method": method, "route": route, "status": str(status)},
                start_ns=start_ns, interval_s=interval_s, count=count, sum=float(count), min=1.0, max=1.0,
                last=float(totals[method, route, status])))
        for (method, route), values in self.latencies.items():
            sketch = LogSketch()
            sketch.add_many(values)
            out.append(MetricRollup(
                name=LATENCY, kind="histogram", labels={"method": method, "route": route}, start_ns=start_ns,
                interval_s=interval_s, count=len(values), sum=sum(values), min=min(values), max=max(values),
                last=values[-1], sketch=sketch.to_model()))
        return out


async def seed(monitor: Monitor, shop: Shop, timeline: Timeline, *, minutes: float, rps: float) -> int:
    """Write `minutes` of shop history ending at the demo's start; returns how many requests it made up."""
    interval_s = float(monitor.config.metrics.flush_interval)
    step_ns = int(interval_s * 1e9)
    end_ns = timeline.start_ns - timeline.start_ns % step_ns
    totals: dict[tuple[str, str, int], int] = defaultdict(int)
    rollups: list[MetricRollup] = []
    spans: list[Span] = []
    logs: list[LogRecord] = []
    made = 0
    for start_ns in range(end_ns - int(minutes * 60e9) // step_ns * step_ns, end_ns, step_ns):
        demo_s = timeline.demo_s(start_ns)
        requests = shop.requests(demo_s, arrivals(shop.rng, demo_s, interval_s, rps))
        interval = Interval()
        for n, request in enumerate(requests):
            interval.add(request)
            if request.traced_anyway or n % SAMPLE == 0:
                at = start_ns + int(shop.rng.random() * max(0.0, interval_s - request.seconds) * 1e9)
                trace, records = shop.records(request, at)
                spans += trace
                logs += records
        rollups += interval.rollups(start_ns, interval_s, totals, active_users(demo_s))
        made += len(requests)
    await monitor.ingest("metrics", rollups)
    await monitor.ingest("spans", spans)
    await monitor.ingest("logs", logs)
    return made
