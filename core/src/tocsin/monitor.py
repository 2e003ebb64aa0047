"""The Monitor: assembles config, plugins, storage and services, and owns their lifecycle.

Recording (metrics, spans, logs) is synchronous, thread-safe and cheap: it only touches in-memory
aggregates and bounded buffers. A flusher task on the monitor's event loop writes them to storage in
batches, every flush interval or as soon as a buffer holds a full batch. In async apps the monitor runs
on the app's loop (`async with monitor:`); in sync apps `monitor.start()` (or `with monitor:`) starts a
background thread that owns a loop. Everything is flushed on close and, as a last resort, at interpreter
exit or on SIGTERM (tocsin.lifecycle). Monitoring failures are counted and reported, never raised into
the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from tocsin import lifecycle
from tocsin.alerting.service import AlertingService
from tocsin.assembly import load_config
from tocsin.clock import Clock, SystemClock
from tocsin.config.schema import Config
from tocsin.errors import StorageUnavailable, TocsinError
from tocsin.events import EventBus
from tocsin.health.service import HealthCheckService
from tocsin.models import Event
from tocsin.notify.service import NotifyService
from tocsin.plugins import PluginManager, Registries, await_me_maybe, build_registries, make_plugin_manager
from tocsin.signals.buffer import BoundedBuffer, sized_buffer
from tocsin.signals.handler import TocsinHandler
from tocsin.signals.logs import Logger, drain_records, entry_size
from tocsin.signals.metrics import MetricsRegistry
from tocsin.signals.sampling import make_sampler
from tocsin.signals.tracing import Tracer
from tocsin.storage.batches import BatchWriter, WriteOutcome, Writer, report_outcome
from tocsin.storage.lease import LEASE_NAME, Leadership, holder_id
from tocsin.storage.location import storage_location
from tocsin.storage.protocol import Retention, StorageBackend
from tocsin.workflows.service import WorkflowMonitor

T = TypeVar("T")

internal_log = logging.getLogger("tocsin")

SPAN_BATCH = 512


class Service(Protocol):
    """A long-running part of the monitor (evaluator, health scheduler, dispatcher) started while it leads."""

    async def start(self) -> None:
        """Start background work on the running loop."""

    async def stop(self) -> None:
        """Stop background work; called before the final flush."""


class Monitor:
    """tocsin in one object: `monitor.metrics`, `monitor.tracer`, `monitor.log`, `monitor.events`, storage."""

    def __init__(self, config: Config | None = None, *, pm: PluginManager | None = None,
                 registries: Registries | None = None, clock: Clock | None = None) -> None:
        self.pm = pm or make_plugin_manager()
        self.registries = registries or build_registries(self.pm)
        self.config = config or load_config({}, registries=self.registries)
        self.clock: Clock = clock or SystemClock()
        now_ns = self.clock.now_ns
        self.events = EventBus()
        cfg = self.config
        self.metrics = MetricsRegistry(max_series=cfg.metrics.max_series_per_metric, on_event=self.emit, clock=now_ns)
        self.span_buffer = sized_buffer("spans", cfg.tracing.buffer_size, cfg.tracing.overflow, item_bytes=2048,
                                        batch_size=SPAN_BATCH, on_batch=self._wake, on_first_drop=self._buffer_full)
        sampler = make_sampler(cfg.tracing.sampler if cfg.tracing.enabled else "always_off", cfg.tracing.sample_rate)
        self.tracer = Tracer(service=cfg.service, buffer=self.span_buffer, sampler=sampler, clock=now_ns)
        self.log_buffer = sized_buffer("logs", cfg.logging.buffer_size, cfg.logging.overflow, item_bytes=512,
                                       batch_size=cfg.logging.batch_size, measure=entry_size, on_batch=self._wake,
                                       on_first_drop=self._buffer_full)
        self.log = Logger(buffer=self.log_buffer, service=cfg.service, name=cfg.service, level=cfg.logging.level,
                          clock=now_ns)
        self.storage: StorageBackend | None = None
        self.health = HealthCheckService(self)
        self.workflows = WorkflowMonitor(self)
        self.notify = NotifyService(self)
        self.alerting = AlertingService(self, router=self.notify.router)
        self.notify.router.rule_channels = self.alerting.channels_for_rule  # rules added in code route too
        self.alerting.windows.exclusive = self._flushing  # windows are warmed from storage between flushes
        self.services: list[Service] = [self.health, self.workflows.expectations, self.notify, self.alerting]
        """The leader work: started while this process holds the store's leader lease (`is_leader`), with the
        retention sweeper. Recording, flushing, writing workflow runs, ingest and reads run in every process."""
        self.holder = holder_id()
        self.leadership = Leadership(
            ttl_s=float(cfg.storage.leader_lease), clock=self.clock, on_change=self._leader_changed,
            acquire=self._acquire_lease, release=self._release_lease, lead=self._lead, follow=self._follow)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_event: asyncio.Event | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._writers = {signal: BatchWriter(signal) for signal in ("logs", "spans", "metrics")}
        self._dropped_seen: Counter[str] = Counter()
        self._stdlib_handler: TocsinHandler | None = None
        self.started = False
        self.closed = False

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        plugins: Sequence[object] = (),
        entrypoints: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> Monitor:
        """Build a monitor from a config path or dict (or `TOCSIN_CONFIG`, or defaults), with installed plugins."""
        pm = make_plugin_manager(*plugins, entrypoints=entrypoints)
        registries = build_registries(pm)
        config = load_config(source, registries=registries, environ=environ)
        return cls(config, pm=pm, registries=registries)

    # -- events ------------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Publish an event on the bus and to `on_event` hooks (hooks run on the monitor's loop). Thread-safe."""
        self.events.publish(event)
        loop = self.loop
        if loop is None or loop.is_closed() or not self.pm.hook.on_event.get_hookimpls():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(self._call_on_event(event))
        else:
            asyncio.run_coroutine_threadsafe(self._call_on_event(event), loop)

    async def _call_on_event(self, event: Event) -> None:
        await self._call_hooks("on_event", monitor=self, event=event)

    async def _call_hooks(self, name: str, *, raise_errors: bool = False, **kwargs: Any) -> None:
        """Call each implementation on its own, so one raising plugin does not stop the others."""
        for impl in reversed(getattr(self.pm.hook, name).get_hookimpls()):
            args = {arg: kwargs[arg] for arg in impl.argnames}
            try:
                await await_me_maybe(impl.function(**args))
            except Exception as error:
                if raise_errors:
                    raise
                internal_log.warning("tocsin: %s hook of %s failed: %r", name, self.pm.source_of(impl.plugin), error)

    def _buffer_full(self, message: str) -> None:
        internal_log.warning("tocsin: %s", message)
        self.emit(Event(topic="system", type="buffer_full", time_ns=self.clock.now_ns(), data={"message": message}))

    def _wake(self) -> None:
        loop, flag = self.loop, self._wake_event
        if loop is not None and flag is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # loop closing
                pass

    # -- lifecycle (async) -------------------------------------------------------------------------

    async def astart(self) -> Monitor:
        """Open storage and start the background services on the running loop."""
        if self.started:
            return self
        backend_cls = self.registries.storage.get(self.config.storage.backend)
        options = self.config.storage.options
        self.storage = backend_cls(options if options is not None else backend_cls.Config())
        await self.storage.open()
        internal_log.info("tocsin: storing in %s", storage_location(self.config.storage.backend,
                                                                    getattr(self.storage, "config", options)))
        self.loop = asyncio.get_running_loop()
        self._wake_event = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self.started = True
        self._tasks = [asyncio.create_task(self._flusher(), name="tocsin-flusher")]
        for buffer in self.buffers.values():  # overflow = "block" waits for this loop's flusher, off its thread
            buffer.consumer_thread, buffer.waitable = threading.get_ident(), True
        await self.workflows.start_writing()
        if self.leadership.ttl_s > 0 and not hasattr(self.storage, "acquire_lease"):
            internal_log.warning("tocsin: storage %r keeps no leases; this process leads whatever others do",
                                 self.config.storage.backend)
            self.leadership.ttl_s = 0
        await self.leadership.start()
        if self.config.logging.capture_stdlib:
            self._stdlib_handler = TocsinHandler(self.log)
            logging.getLogger().addHandler(self._stdlib_handler)
        await self._call_hooks("startup", raise_errors=True, monitor=self)
        lifecycle.register(self._at_exit)  # flushed at exit, before the thread pools stop, if never closed
        return self

    async def aclose(self) -> None:
        """Stop the services, flush every buffer, and close storage. Safe to call twice."""
        if self.closed or not self.started:
            self.closed = True
            return
        self.closed = True
        lifecycle.unregister(self._at_exit)
        await self._call_hooks("shutdown", monitor=self)
        try:
            await self.leadership.stop()
        except Exception as error:
            internal_log.warning("tocsin: stepping down as leader failed: %r", error)
        try:
            await self.workflows.stop_writing()
        except Exception as error:
            internal_log.warning("tocsin: stopping the workflow writer failed: %r", error)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._final_flush()

    async def _final_flush(self) -> None:
        if self._stdlib_handler is not None:
            logging.getLogger().removeHandler(self._stdlib_handler)
        for buffer in self.buffers.values():
            buffer.stop_waiting()
        await self._aflush()
        for section, buffer in self.buffers.items():
            if (note := buffer.drop_note(section)) is not None:
                internal_log.warning("tocsin: %s", note)
        lost = {writer.signal: len(writer.pending) for writer in self._writers.values()}
        lost["workflows"] = len(self.workflows.writer.pending)
        for signal, count in lost.items():
            if count:
                self.metrics.counter("tocsin_records_dropped_total").inc(count, signal=signal, reason="shutdown")
                internal_log.warning("tocsin: %d %s record(s) could not be stored before close and are lost",
                                     count, signal)
        await self._storage().close()

    async def __aenter__(self) -> Monitor:
        return await self.astart()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- lifecycle (sync, background thread) -------------------------------------------------------

    def start(self, timeout: float = 30) -> Monitor:
        """Start on a background thread that owns an event loop (for sync apps)."""
        if self.started:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            lifecycle.leave_sigterm_to_other_threads()  # and to the threads this one starts (executor, storage)
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="tocsin-loop", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        try:
            asyncio.run_coroutine_threadsafe(self.astart(), loop).result(timeout)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            raise
        lifecycle.install_sigterm_handler()  # from the main thread, when SIGTERM has its default action
        return self

    def close(self, timeout: float = 30) -> None:
        """Flush and stop the background thread started by `start()`."""
        thread, loop = self._thread, self.loop
        if thread is None or loop is None:
            self.closed = True
            return
        try:
            if not self.closed:
                asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._thread = None

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        """Run a coroutine on the monitor's loop from another thread and wait for it (for sync apps)."""
        loop = self.loop
        if loop is None or self.closed or loop.is_closed():
            coro.close()
            raise TocsinError("the monitor is not started; call monitor.start() first" if loop is None
                              else "the monitor is closed")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _at_exit(self) -> None:
        """Interpreter exit: flush what is still buffered, best effort."""
        try:
            if self._thread is not None:
                self.close(timeout=10)
            elif self.loop is not None and not self.closed:
                # The app's loop is gone (asyncio.run returned without `async with`): flush on a fresh one.
                self.closed = True
                self._flush_lock = None
                asyncio.run(self._final_flush())
        except Exception as error:  # pragma: no cover - nothing left to report to
            internal_log.warning("tocsin: final flush at exit failed: %r", error)

    # -- flushing ----------------------------------------------------------------------------------

    def flush(self) -> Coroutine[Any, Any, None]:
        """Write everything buffered so far (logs, finished and long-running spans, metrics, workflow executions
        and steps): `await monitor.flush()` in async code, while in sync code `monitor.flush()` writes now."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # sync code: flush on the monitor's loop and wait, unless the caller drives that loop
            if self.loop is None or self.loop.is_closed() or self.loop.is_running():
                self.run_sync(self._aflush())
                return lifecycle.Done()
        return self._aflush()

    async def _aflush(self) -> None:
        loop = self.loop
        if loop is not None and loop.is_running() and loop is not asyncio.get_running_loop():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._aflush(), loop))  # where storage lives
            return
        async with self._flushing():
            await self._flush_logs()
            await self._flush_spans()
            await self._flush_metrics()
        await self.workflows.flush()

    def _flushing(self) -> asyncio.Lock:
        """The lock every flush holds (made on first use, on the loop that flushes)."""
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        return self._flush_lock

    async def _flush_logs(self, force: bool = True) -> None:
        cuts: Counter[str] = Counter()
        records = drain_records(self.log_buffer, cuts=cuts)
        await self._write("logs", records, self._storage().write_logs, force=force, sanitized=cuts)

    async def _flush_spans(self, force: bool = True) -> None:
        spans = self.tracer.drain(self.clock.now_ns(), live_after_s=self.config.tracing.live_after)
        await self._write("spans", spans, self._storage().write_spans, force=force)

    async def _flush_metrics(self, force: bool = True) -> None:
        rollups = self.metrics.collect() if self.config.metrics.enabled else []
        self.alerting.windows.observe(rollups)
        await self._write("metrics", rollups, self._storage().write_metrics, force=force)
        await self.alerting.writers.announce(self._storage(), rollups, leader=self.is_leader,
                                             now_ns=self.clock.now_ns())

    def _storage(self) -> StorageBackend:
        if self.storage is None:
            raise TocsinError("the monitor is not started; use `async with monitor:` or monitor.start()")
        return self.storage

    async def _write(self, signal: str, items: list[Any], writer: Writer, *, force: bool = True,
                     sanitized: Counter[str] | None = None) -> None:
        """Write a batch (after anything an earlier transient failure left) and count what happened to it."""
        self._count_buffer_drops()
        started = time.perf_counter()
        outcome = await self._writers[signal].write(items, writer, now=time.monotonic(), force=force)
        if sanitized:
            outcome.sanitized.update(sanitized)
        report_outcome(outcome, signal, metrics=self.metrics, emit=self.emit, now_ns=self.clock.now_ns)
        if outcome.written and outcome.error is None:
            self.metrics.histogram("tocsin_flush_seconds").observe(time.perf_counter() - started, signal=signal)

    async def ingest(self, signal: str, records: Sequence[Any]) -> WriteOutcome:
        """Store records made elsewhere (`logs`, `spans` or `metrics` from the API or OTLP) now, on the same
        write path as recorded ones: bad values sanitized, unstorable records dropped and counted, the rest
        stored. A transient storage failure raises StorageUnavailable, so the caller can answer "retry later"
        (HTTP 503) instead of queueing without bound."""
        storage = self._storage()
        writers: dict[str, Writer] = {"logs": storage.write_logs, "spans": storage.write_spans,
                                      "metrics": storage.write_metrics}
        if signal not in writers:
            raise TocsinError(f"cannot ingest {signal!r}; one of {', '.join(writers)}")
        metrics = signal == "metrics"
        async with self._flushing() if metrics else contextlib.nullcontext():  # as a flush (see windows.warm)
            outcome = await BatchWriter(signal).write(records, writers[signal], now=time.monotonic())
            if metrics and outcome.written:
                self.alerting.windows.observe(records)
                await self.alerting.writers.announce(storage, records, leader=self.is_leader,
                                                     now_ns=self.clock.now_ns())
        report_outcome(outcome, signal, metrics=self.metrics, emit=self.emit, now_ns=self.clock.now_ns)
        if outcome.kept:
            raise StorageUnavailable(f"storage did not take {outcome.kept} {signal} records: {outcome.error!r}")
        return outcome

    @property
    def buffers(self) -> dict[str, BoundedBuffer[Any]]:
        """The in-memory buffers by config section: `logging`, `tracing`, `workflows`."""
        return {"logging": self.log_buffer, "tracing": self.span_buffer, "workflows": self.workflows.buffer}

    def _count_buffer_drops(self) -> None:
        for buffer in self.buffers.values():
            new = buffer.dropped - self._dropped_seen[buffer.name]
            if new:
                self._dropped_seen[buffer.name] = buffer.dropped
                self.metrics.counter("tocsin_records_dropped_total").inc(new, signal=buffer.name, reason="buffer_full")

    async def _flusher(self) -> None:
        """Flush each signal on its own interval, or early when a buffer holds a full batch."""
        cfg = self.config
        intervals = {"logs": cfg.logging.flush_interval, "spans": cfg.tracing.flush_interval,
                     "metrics": cfg.metrics.flush_interval}
        flushers = {"logs": self._flush_logs, "spans": self._flush_spans, "metrics": self._flush_metrics}
        now = time.monotonic()
        due = {signal: now + max(interval, 0.01) for signal, interval in intervals.items()}
        assert self._wake_event is not None and self._flush_lock is not None
        while True:
            timeout = max(0.0, min(due.values()) - time.monotonic())
            try:
                await asyncio.wait_for(self._wake_event.wait(), timeout)
            except TimeoutError:
                pass
            self._wake_event.clear()
            now = time.monotonic()
            for signal, flush in flushers.items():
                batch_ready = (signal == "logs" and len(self.log_buffer) >= self.log_buffer.batch_size) or (
                    signal == "spans" and len(self.span_buffer) >= self.span_buffer.batch_size)
                if now >= due[signal] or batch_ready:
                    due[signal] = now + max(intervals[signal], 0.01)
                    try:
                        async with self._flush_lock:
                            await flush(force=False)  # a failing storage is retried with backoff
                    except Exception as error:  # never let the flusher die
                        internal_log.warning("tocsin: flushing %s failed: %r", signal, error)

    # -- leadership ----------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Whether this process runs the leader work (evaluation, dispatch, health checks, sweeps) of its store."""
        return self.leadership.is_leader

    async def _acquire_lease(self, now_ns: int) -> bool:
        return await self._storage().acquire_lease(LEASE_NAME, self.holder, self.leadership.ttl_s, now_ns)

    async def _release_lease(self) -> None:
        await self._storage().release_lease(LEASE_NAME, self.holder)

    async def _lead(self) -> None:
        """Start the leader work: the retention sweeper and every service."""
        if not any(task.get_name() == "tocsin-retention" for task in self._tasks):
            self._tasks.append(asyncio.create_task(self._sweeper(), name="tocsin-retention"))
        for service in self.services:
            await service.start()

    async def _follow(self) -> None:
        """Stop the leader work (services in reverse order, then the sweeper); recording goes on."""
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception as error:
                internal_log.warning("tocsin: stopping %r failed: %r", service, error)
        sweepers = [task for task in self._tasks if task.get_name() == "tocsin-retention"]
        self._tasks = [task for task in self._tasks if task not in sweepers]
        for task in sweepers:
            task.cancel()
        await asyncio.gather(*sweepers, return_exceptions=True)

    def _leader_changed(self, leader: bool) -> None:
        if self.leadership.ttl_s > 0:
            internal_log.info("tocsin: this process (%s) is %s", self.holder, "the leader" if leader else "a follower")
        self.emit(Event(topic="system", type="leader" if leader else "follower", time_ns=self.clock.now_ns(),
                        data={"holder": self.holder, "lease": LEASE_NAME, "ttl_s": self.leadership.ttl_s}))

    def retention(self) -> Retention:
        """The configured retention as the storage protocol takes it (0 means keep forever)."""
        cfg = self.config.storage.retention
        return Retention(**{name: (getattr(cfg, name) or None) for name in Retention.__struct_fields__})

    async def _sweeper(self) -> None:
        interval = max(float(self.config.storage.retention.sweep_interval), 1.0)
        while True:
            await self.clock.sleep(interval)
            try:
                deleted = await self._storage().sweep(self.retention(), self.clock.now_ns())
            except Exception as error:
                internal_log.warning("tocsin: retention sweep failed: %r", error)
                continue
            if any(deleted.values()):
                self.emit(Event(topic="system", type="retention_sweep", time_ns=self.clock.now_ns(), data=deleted))
