"""The Monitor: assembly, async and threaded lifecycles, flushing, failure handling and the event bus."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import msgspec
import pytest

from tocsin import hookimpl
from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.errors import TocsinError
from tocsin.models import Event
from tocsin.monitor import Monitor
from tocsin.storage.protocol import LogQuery, MetricQuery, SpanQuery
from tocsin.testing import make_monitor


class FlakyStorage(MemoryStorage):
    """Memory storage whose log writes fail until told otherwise (a real failure path, not a mock)."""

    failing = True
    attempts = 0

    async def write_logs(self, records):
        FlakyStorage.attempts += 1
        if FlakyStorage.failing:
            raise OSError("disk on fire")
        await super().write_logs(records)


class FlakyPlugin:
    __name__ = "flaky-storage"

    @hookimpl
    def register_storage_backends(self, register):
        register("flaky", FlakyStorage)


async def test_async_monitor_records_all_three_signals_and_flushes_on_close():
    monitor = make_monitor()
    async with monitor:
        counter = monitor.metrics.counter("jobs_total")
        with monitor.tracer.span("job", attributes={"queue": "q1"}) as span:
            counter.inc(queue="q1")
            counter.inc(2, queue="q1")
            monitor.log.info("job done", items=3)
        trace_id = span.trace_id
    storage = monitor.storage
    [hit] = (await storage.search_logs(LogQuery())).items
    assert hit.record.message == "job done"
    assert (hit.record.trace_id, hit.record.span_id) == (trace_id, span.span_id)
    assert hit.record.attributes == {"items": 3}
    [stored_span] = await storage.get_trace(trace_id)
    assert stored_span.name == "job" and stored_span.attributes == {"queue": "q1"}
    assert stored_span.end_ns is not None
    [series] = await storage.query_metrics(MetricQuery(name="jobs_total", start_ns=0, end_ns=2**62, aggregate="sum"))
    assert series.labels == {"queue": "q1"} and series.points[0][1] == 3


def test_sync_monitor_runs_its_loop_on_a_thread_and_accepts_records_from_any_thread():
    monitor = make_monitor()
    with monitor:
        assert monitor.loop is not None and monitor._thread is not None
        histogram = monitor.metrics.histogram("work_seconds")

        def work(n: int) -> None:
            for i in range(100):
                histogram.observe(i / 100, worker=str(n))
                monitor.log.info("step", worker=n, i=i)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        monitor.run_sync(monitor.flush())
        page = monitor.run_sync(monitor.storage.search_logs(LogQuery(limit=1)))
        assert page.total == 400
    series = asyncio.run(monitor.storage.query_metrics(
        MetricQuery(name="work_seconds", start_ns=0, end_ns=2**62, aggregate="count", by=[])))
    assert series[0].points[0][1] == 400
    assert monitor._thread is None


async def test_a_failing_storage_is_retried_counted_and_never_raises_into_the_app():
    FlakyStorage.failing, FlakyStorage.attempts = True, 0
    monitor = make_monitor(FlakyPlugin(), config={"storage": {"backend": "flaky"}, "logging": {"flush_interval": 0.01}})
    async with monitor:
        monitor.log.warning("first")
        for _ in range(200):
            if FlakyStorage.attempts >= 2:
                break
            await asyncio.sleep(0.01)
        assert FlakyStorage.attempts >= 2
        monitor.log.warning("second")
        FlakyStorage.failing = False
        await monitor.flush()
        page = await monitor.storage.search_logs(LogQuery())
        assert [hit.record.message for hit in page.items] == ["second", "first"]
        await monitor.flush()
        errors = await monitor.storage.query_metrics(
            MetricQuery(name="tocsin_flush_errors_total", start_ns=0, end_ns=2**62, aggregate="sum"))
    assert errors[0].labels == {"signal": "logs"}
    assert errors[0].points[0][1] >= 2


async def test_a_full_log_buffer_drops_counts_and_emits_one_event():
    monitor = make_monitor(config={"logging": {"buffer_size": 10, "batch_size": 10, "flush_interval": "1h"}})
    async with monitor:
        events = monitor.events.subscribe(["system"])
        for i in range(25):
            monitor.log.info("spam", i=i)
        assert monitor.log_buffer.dropped == 15
        [event] = events.drain()
        assert event.type == "buffer_full" and "logs buffer is full" in event.data["message"]
        await monitor.flush()
        await monitor.flush()
        dropped = await monitor.storage.query_metrics(
            MetricQuery(name="tocsin_records_dropped_total", start_ns=0, end_ns=2**62, aggregate="sum"))
    assert dropped[0].labels == {"signal": "logs", "reason": "buffer_full"} and dropped[0].points[0][1] == 15


async def test_a_long_running_span_is_visible_while_it_runs():
    monitor = make_monitor(config={"tracing": {"live_after": 0, "flush_interval": "1h"}})
    async with monitor:
        with monitor.tracer.span("long job") as span:
            await asyncio.sleep(0.01)
            await monitor.flush()
            [running] = await monitor.storage.get_trace(span.trace_id)
            assert running.end_ns is None
        await monitor.flush()
        [done] = await monitor.storage.get_trace(span.trace_id)
        assert done.end_ns is not None
        page = await monitor.storage.search_spans(SpanQuery(name="long job"))
        assert len(page.items) == 1


async def test_event_bus_fans_out_by_topic_and_bounds_slow_subscribers():
    monitor = make_monitor()
    alerts = monitor.events.subscribe(["alerts"], maxsize=3)
    everything = monitor.events.subscribe()
    for i in range(5):
        monitor.emit(Event(topic="alerts", type="firing", time_ns=i))
    monitor.emit(Event(topic="health", type="changed", time_ns=9))
    assert [e.time_ns for e in alerts.drain()] == [2, 3, 4]
    assert alerts.dropped == 2
    assert len(everything.drain()) == 6
    waiter = asyncio.create_task(alerts.get())
    await asyncio.sleep(0)
    threading.Thread(target=monitor.emit, args=(Event(topic="alerts", type="resolved", time_ns=10),)).start()
    async with asyncio.timeout(5):
        assert (await waiter).type == "resolved"
    alerts.close()
    monitor.emit(Event(topic="alerts", type="firing", time_ns=11))
    assert alerts.drain() == []


def test_stdlib_capture_and_flush_at_interpreter_exit(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import logging, sys
        from tocsin.testing import make_monitor

        monitor = make_monitor(config={"logging": {"capture_stdlib": True, "flush_interval": "1h"}})
        import atexit
        def report():
            import asyncio
            from tocsin.storage.protocol import LogQuery
            page = asyncio.run(monitor.storage.search_logs(LogQuery()))
            print(sorted((h.record.logger, h.record.message) for h in page.items))
        atexit.register(report)   # registered first, so it runs after tocsin's own exit hook (LIFO)
        monitor.start()
        logging.getLogger("legacy").warning("from stdlib %s", "logging")
        monitor.log.info("from tocsin")
        sys.exit(0)               # no monitor.close(): the exit hook must flush
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('app', 'from tocsin'), ('legacy', 'from stdlib logging')]"


def test_from_config_and_errors_before_start(tmp_path):
    path = tmp_path / "tocsin.toml"
    path.write_text('service = "shop"\n[storage]\nbackend = "memory"\n')
    monitor = Monitor.from_config(path, entrypoints=False)
    assert monitor.config.service == "shop"
    assert monitor.tracer.service == "shop"
    with pytest.raises(TocsinError, match="not started"):
        monitor.run_sync(asyncio.sleep(0))
    monitor.close()  # closing an unstarted monitor is harmless


async def test_plugin_storage_options_reach_the_backend():
    class OptionStorage(MemoryStorage):
        class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
            label: str = "default"

        def __init__(self, config):
            super().__init__(MemoryStorage.Config())
            self.label = config.label

    class Plugin:
        __name__ = "option-storage"

        @hookimpl
        def register_storage_backends(self, register):
            register("optioned", OptionStorage)

    monitor = make_monitor(Plugin(), config={"storage": {"backend": "optioned", "label": "custom"}})
    async with monitor:
        assert monitor.storage.label == "custom"


# -- leadership (two processes on one file: plugins/sqlite/tests/test_leader.py) ---------------------------


class LeaseStorage(MemoryStorage):
    """Memory storage whose lease calls can be made to fail, as a store out of reach would."""

    unreachable = False

    async def acquire_lease(self, name, holder, ttl_s, now_ns):
        if LeaseStorage.unreachable:
            raise OSError("store out of reach")
        return await super().acquire_lease(name, holder, ttl_s, now_ns)


class LeasePlugin:
    __name__ = "lease-storage"

    @hookimpl
    def register_storage_backends(self, register):
        register("leased", LeaseStorage)


def _leader_work_runs(monitor: Monitor) -> bool:
    running = {monitor.alerting._task is not None, monitor.notify._loop_task is not None,
               monitor.health._task is not None, monitor.workflows.expectations._task is not None,
               any(task.get_name() == "tocsin-retention" for task in monitor._tasks)}
    assert len(running) == 1, "the leader work starts and stops as a whole"
    return running.pop()


async def test_a_leader_steps_down_when_the_store_is_out_of_reach_past_its_lease_and_comes_back():
    from tocsin.clock import VirtualClock

    clock = VirtualClock(1_700_000_000 * 10**9)
    LeaseStorage.unreachable = False
    monitor = make_monitor(LeasePlugin(), clock=clock, config={"storage": {"backend": "leased"}})
    events = monitor.events.subscribe(["system"])
    async with monitor:
        await clock.advance(0)  # the background tasks start waiting on the clock
        assert monitor.is_leader and _leader_work_runs(monitor) and monitor.leadership.interval_s == 5
        assert [e.type for e in events.drain()] == ["leader"]
        LeaseStorage.unreachable = True
        await clock.advance(5)  # renewed at 0 for 15 s: a failure now still leaves it covered until 10
        assert monitor.is_leader and _leader_work_runs(monitor)
        await clock.advance(5)  # at 10 the lease may run out before the next try: stop now
        assert not monitor.is_leader and not _leader_work_runs(monitor)
        [follower] = events.drain()
        assert follower.type == "follower" and follower.data["holder"] == monitor.holder
        monitor.log.info("still recorded")
        await monitor.flush()
        assert (await monitor.storage.search_logs(LogQuery(text="recorded"))).total == 1
        LeaseStorage.unreachable = False
        await clock.advance(5)
        assert monitor.is_leader and _leader_work_runs(monitor)
        assert [e.type for e in events.drain()] == ["leader"]
    assert not _leader_work_runs(monitor)
    assert await monitor.storage.lease_holder("leader", clock.now_ns()) is None  # released on close


async def test_a_leader_that_finds_another_holder_follows_at_once():
    from tocsin.clock import VirtualClock

    clock = VirtualClock(1_700_000_000 * 10**9)
    monitor = make_monitor(clock=clock, config={"storage": {"backend": "memory", "leader_lease": "30s"}})
    async with monitor:
        await clock.advance(0)  # the background tasks start waiting on the clock
        storage = monitor.storage
        assert await storage.lease_holder("leader", clock.now_ns()) == monitor.holder
        await storage.release_lease("leader", monitor.holder)
        assert await storage.acquire_lease("leader", "elsewhere:1:ab", 30, clock.now_ns())
        await clock.advance(10)
        assert not monitor.is_leader and not _leader_work_runs(monitor)
        await clock.advance(30)  # the other holder's lease ran out unrenewed: taken over
        assert monitor.is_leader and _leader_work_runs(monitor)
    assert await storage.lease_holder("leader", clock.now_ns()) is None


async def test_with_leader_lease_0_the_monitor_always_leads_and_keeps_no_lease():
    monitor = make_monitor(config={"storage": {"backend": "memory", "leader_lease": 0}})
    async with monitor:
        assert monitor.is_leader and _leader_work_runs(monitor)
        assert await monitor.storage.lease_holder("leader", monitor.clock.now_ns()) is None
    assert not monitor.is_leader


# -- flush() and run_sync() from sync code (issue 18) ----------------------------------------------------------


def test_flush_in_sync_code_writes_now_to_a_real_sqlite_file(tmp_path):
    import warnings

    pytest.importorskip("tocsin_sqlite")
    monitor = Monitor.from_config({"storage": {"backend": "sqlite", "path": str(tmp_path / "app.db")},
                                   "logging": {"flush_interval": "1h"}})
    with monitor, warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" fails the test
        monitor.log.info("written by a sync flush")
        monitor.flush()  # as docs/getting-started.md writes it: no await, no run_sync
        page = monitor.run_sync(monitor.storage.search_logs(LogQuery(text="sync")))
        assert [hit.record.message for hit in page.items] == ["written by a sync flush"]
        monitor.log.info("second")
        monitor.run_sync(monitor.flush())  # the older spelling still works
        assert monitor.run_sync(monitor.storage.search_logs(LogQuery(text="second"))).total == 1

        async def from_another_loop() -> int:  # the app's own loop, while the monitor runs on its thread
            monitor.log.info("third")
            await monitor.flush()
            return (await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                monitor.storage.search_logs(LogQuery(text="third")), monitor.loop))).total

        assert asyncio.run(from_another_loop()) == 1


def test_run_sync_and_flush_after_close_say_the_monitor_is_closed():
    monitor = make_monitor()
    with monitor:
        monitor.log.info("kept")
    with pytest.raises(TocsinError, match="the monitor is closed"):
        monitor.run_sync(monitor.storage.search_logs(LogQuery()))
    with pytest.raises(TocsinError, match="the monitor is closed"):
        monitor.flush()
    with pytest.raises(TocsinError, match="not started"):
        make_monitor().flush()
