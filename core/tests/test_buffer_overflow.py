"""Bursts: a tight loop of log calls either waits for the writer (`overflow = "block"`, nothing lost) or drops
what does not fit, counting every drop exactly and saying so at close (`overflow = "drop"`, the default)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading

from tocsin.signals.buffer import BoundedBuffer, approx_size
from tocsin.testing import make_monitor

CALLS = 200_000


def _loop(monitor, calls: int = CALLS) -> dict[str, int]:
    """Log `calls` records as fast as a sync app can, then return what the store holds and what was dropped."""
    info = monitor.log.info
    for i in range(calls):
        info("tight loop", i=i)
    monitor.flush()
    stored = monitor.run_sync(monitor.storage.stats()).rows["logs"]
    return {"stored": stored, "dropped": monitor.log_buffer.dropped, "blocked": monitor.log_buffer.blocked}


def test_block_stores_every_record_of_a_tight_loop():
    monitor = make_monitor(config={"logging": {"overflow": "block", "buffer_size": "256KiB", "flush_interval": "1h"}})
    with monitor:
        seen = _loop(monitor)
    assert seen["stored"] == CALLS and seen["dropped"] == 0
    assert seen["blocked"] > 0  # the buffer really was full and the loop waited for the writer


def test_drop_counts_every_dropped_record_and_says_so_at_close(caplog):
    monitor = make_monitor(config={"logging": {"buffer_size": 1000, "batch_size": 500, "flush_interval": "1h"}})
    with caplog.at_level(logging.WARNING, logger="tocsin"), monitor:
        seen = _loop(monitor)
    assert seen["dropped"] > 0 and seen["stored"] + seen["dropped"] == CALLS
    [note] = [r.getMessage() for r in caplog.records if "were dropped" in r.getMessage()]
    assert f"{seen['dropped']:,} logs were dropped because the buffer was full" in note
    assert '[logging] buffer_size = 1000, overflow = "drop"' in note and 'overflow = "block"' in note


def test_with_defaults_a_tight_loop_prints_what_it_dropped_at_close(tmp_path):
    script = textwrap.dedent(f"""
        from tocsin.testing import make_monitor
        monitor = make_monitor()
        with monitor:
            for i in range({CALLS}):
                monitor.log.info("tight loop", i=i)
            monitor.flush()
            stored = monitor.run_sync(monitor.storage.stats()).rows["logs"]
            print(stored, monitor.log_buffer.dropped, monitor.log_buffer.capacity)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    stored, dropped, capacity = map(int, done.stdout.split())
    assert stored + dropped == CALLS
    assert capacity > 50_000  # 64 MiB of ~0.5 KiB records, where 10,000 items used to be the bound
    if dropped:
        assert f"{dropped:,} logs were dropped because the buffer was full" in done.stderr
    else:
        assert "were dropped" not in done.stderr


def test_a_blocked_caller_drops_once_the_flusher_is_gone():
    buffer: BoundedBuffer[int] = BoundedBuffer("logs", 2, overflow="block")
    buffer.waitable = True
    assert buffer.put(1) and buffer.put(2)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(buffer.put(3)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and buffer.blocked == 1  # waiting for a drain
    buffer.stop_waiting()
    waiter.join(5)
    assert results == [False] and buffer.dropped == 1


def test_a_drain_lets_a_blocked_caller_go_on():
    buffer: BoundedBuffer[int] = BoundedBuffer("logs", 1, overflow="block")
    buffer.waitable = True
    buffer.put(1)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(buffer.put(2)))
    waiter.start()
    waiter.join(0.2)
    assert buffer.drain() == [1]
    waiter.join(5)
    assert results == [True] and buffer.drain() == [2] and buffer.dropped == 0


def test_the_flushers_own_thread_never_waits_for_itself():
    buffer: BoundedBuffer[int] = BoundedBuffer("logs", 1, overflow="block")
    buffer.waitable, buffer.consumer_thread = True, threading.get_ident()
    assert buffer.put(1) and not buffer.put(2)
    assert buffer.dropped == 1 and buffer.blocked == 0


def test_a_memory_budget_becomes_a_count_from_the_measured_size():
    buffer: BoundedBuffer[dict[str, str]] = BoundedBuffer("logs", max_bytes=1_000_000, item_bytes=100, batch_size=10)
    assert buffer.capacity == 10_000
    for _ in range(50):
        buffer.put({"message": "x" * 2000})
    buffer.drain()
    big = approx_size({"message": "x" * 2000})
    assert big > 2000 and buffer.capacity < 1_000_000 // 100 and buffer.capacity >= 1_000_000 // big


def test_buffer_size_is_a_memory_size_or_a_number_of_records_and_overflow_is_checked():
    import pytest

    from tocsin.assembly import load_config
    from tocsin.errors import ConfigError

    config = load_config({"logging": {"buffer_size": "1.5MiB", "overflow": "block"}, "tracing": {"buffer_size": 500}},
                         environ={})
    assert config.logging.buffer_size.bytes == 1_572_864 and config.logging.buffer_size.records is None
    assert config.tracing.buffer_size.records == 500 and config.tracing.buffer_size.bytes is None
    assert config.workflows.buffer_size.bytes == 32 * 2**20 and config.workflows.overflow == "drop"
    with pytest.raises(ConfigError) as caught:
        load_config({"logging": {"buffer_size": "64 megs", "overflow": "wait"}, "tracing": {"buffer_size": 0}},
                    environ={})
    message = str(caught.value)
    assert "logging.buffer_size: expected a size like '64MiB'" in message and "'64 megs'" in message
    assert "logging.overflow: expected one of drop|block, got 'wait'" in message
    assert "tracing.buffer_size" in message and "got 0" in message
    with pytest.raises(ConfigError, match=r"logging.buffer_size: expected a size .* got '³'"):
        load_config({"logging": {"buffer_size": "³"}}, environ={})
