"""Logging per record: tocsin's Logger and TocsinHandler side by side with stdlib logging to a file.

Every benchmark times one round of RECORDS calls, so pytest-benchmark's per-round figures read directly as
per-record figures with the unit scaled by 1000 (1 ms per round = 1 µs per record). Buffers are drained
between rounds outside the timing, so no record is ever dropped. The stdlib loggers live outside the
logging tree so pytest's capture handlers do not add to their cost.

Run: uv run pytest benchmarks/test_logs_bench.py --benchmark-only
"""

from __future__ import annotations

import logging

import msgspec
import pytest

from tocsin.signals.buffer import BoundedBuffer
from tocsin.signals.context import ExecutionContext, current_execution
from tocsin.signals.handler import TocsinHandler
from tocsin.signals.logs import Logger, drain_records

RECORDS = 1_000
ROUNDS = 40
LOOP = range(RECORDS)
EXTRA = {"user": "ann", "action": "login", "order_id": 42, "total": 9.5}
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def per_record(benchmark, target, empties: BoundedBuffer | None = None) -> None:
    """Time ROUNDS rounds of `target` (RECORDS calls each), draining `empties` untimed before each round."""

    def setup() -> None:
        if empties is not None:
            empties.drain()

    benchmark.extra_info["records_per_round"] = RECORDS
    benchmark.pedantic(target, setup=setup, rounds=ROUNDS, warmup_rounds=2)


@pytest.fixture
def buffer():
    """A buffer big enough for a round; the test drains it between rounds."""
    return BoundedBuffer("logs", RECORDS * 2)


@pytest.fixture
def tocsin_log(buffer):
    """tocsin's logger inside a workflow execution, so context capture is part of the cost."""
    token = current_execution.set(ExecutionContext("run-1", step="bench"))
    yield Logger(buffer=buffer, service="bench", name="bench.tocsin")
    current_execution.reset(token)
    assert buffer.dropped == 0


@pytest.fixture
def file_logger(tmp_path):
    """The peer: a stdlib logger writing formatted records to a FileHandler in a temp file."""
    handler = logging.FileHandler(tmp_path / "bench.log")
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.Logger("bench.stdlib", logging.INFO)
    logger.addHandler(handler)
    yield logger
    handler.close()


@pytest.fixture
def handler_logger(tocsin_log):
    """A stdlib logger whose only handler is TocsinHandler."""
    logger = logging.Logger("bench.handler", logging.INFO)
    logger.addHandler(TocsinHandler(tocsin_log))
    return logger


# -- caller cost per record -------------------------------------------------------------------------


@pytest.mark.benchmark(group="log record: caller cost (per 1000 records)")
def test_stdlib_file_handler(benchmark, file_logger):
    def run() -> None:
        for _ in LOOP:
            file_logger.info("user %s did %s", "ann", "login")

    per_record(benchmark, run)


@pytest.mark.benchmark(group="log record: caller cost (per 1000 records)")
def test_stdlib_file_handler_extra(benchmark, file_logger):
    def run() -> None:
        for _ in LOOP:
            file_logger.info("user did something", extra=EXTRA)

    per_record(benchmark, run)


@pytest.mark.benchmark(group="log record: caller cost (per 1000 records)")
def test_tocsin_logger(benchmark, tocsin_log, buffer):
    def run() -> None:
        for _ in LOOP:
            tocsin_log.info("user did something", user="ann", action="login")

    per_record(benchmark, run, empties=buffer)


@pytest.mark.benchmark(group="log record: caller cost (per 1000 records)")
def test_tocsin_logger_4_fields(benchmark, tocsin_log, buffer):
    def run() -> None:
        for _ in LOOP:
            tocsin_log.info("user did something", user="ann", action="login", order_id=42, total=9.5)

    per_record(benchmark, run, empties=buffer)


@pytest.mark.benchmark(group="log record: caller cost (per 1000 records)")
def test_stdlib_to_tocsin_handler(benchmark, handler_logger, buffer):
    def run() -> None:
        for _ in LOOP:
            handler_logger.info("user %s did %s", "ann", "login")

    per_record(benchmark, run, empties=buffer)


@pytest.mark.benchmark(group="log record: caller cost (per 1000 records)")
def test_stdlib_to_tocsin_handler_extra(benchmark, handler_logger, buffer):
    def run() -> None:
        for _ in LOOP:
            handler_logger.info("user did something", extra=EXTRA)

    per_record(benchmark, run, empties=buffer)


# -- a level that is filtered out -------------------------------------------------------------------


@pytest.mark.benchmark(group="log record: filtered-out level (per 1000 calls)")
def test_filtered_empty_loop_floor(benchmark):
    def run() -> None:
        for _ in LOOP:
            pass

    per_record(benchmark, run)


@pytest.mark.benchmark(group="log record: filtered-out level (per 1000 calls)")
def test_filtered_stdlib(benchmark, file_logger):
    def run() -> None:
        for _ in LOOP:
            file_logger.debug("user %s did %s", "ann", "login")

    per_record(benchmark, run)


@pytest.mark.benchmark(group="log record: filtered-out level (per 1000 calls)")
def test_filtered_stdlib_extra_2_fields(benchmark, file_logger):
    def run() -> None:
        for _ in LOOP:
            file_logger.debug("user did something", extra={"user": "ann", "action": "login"})

    per_record(benchmark, run)


@pytest.mark.benchmark(group="log record: filtered-out level (per 1000 calls)")
def test_filtered_tocsin(benchmark, tocsin_log, buffer):
    def run() -> None:
        for _ in LOOP:
            tocsin_log.debug("user did something")

    per_record(benchmark, run)
    assert len(buffer) == 0


@pytest.mark.benchmark(group="log record: filtered-out level (per 1000 calls)")
def test_filtered_tocsin_2_fields(benchmark, tocsin_log, buffer):
    def run() -> None:
        for _ in LOOP:
            tocsin_log.debug("user did something", user="ann", action="login")

    per_record(benchmark, run)
    assert len(buffer) == 0


# -- end to end: record, then drain into LogRecord Structs -------------------------------------------


@pytest.mark.benchmark(group="log record: end to end (per 1000 records)")
def test_end_to_end_stdlib_file_handler(benchmark, file_logger):
    def run() -> None:
        for _ in LOOP:
            file_logger.info("user %s did %s", "ann", "login")

    per_record(benchmark, run)


@pytest.mark.benchmark(group="log record: end to end (per 1000 records)")
def test_end_to_end_tocsin_drain(benchmark, tocsin_log, buffer):
    def run() -> None:
        for _ in LOOP:
            tocsin_log.info("user did something", user="ann", action="login")
        assert len(drain_records(buffer)) == RECORDS

    per_record(benchmark, run)


@pytest.mark.benchmark(group="log record: end to end (per 1000 records)")
def test_end_to_end_tocsin_drain_and_encode(benchmark, tocsin_log, buffer):
    encode = msgspec.json.Encoder().encode

    def run() -> None:
        for _ in LOOP:
            tocsin_log.info("user did something", user="ann", action="login")
        encode(drain_records(buffer))

    per_record(benchmark, run)


@pytest.mark.benchmark(group="log record: end to end (per 1000 records)")
def test_end_to_end_handler_drain(benchmark, handler_logger, buffer):
    def run() -> None:
        for _ in LOOP:
            handler_logger.info("user %s did %s", "ann", "login")
        drain_records(buffer)

    per_record(benchmark, run)
