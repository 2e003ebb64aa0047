"""The structured logger, drain_records and the stdlib TocsinHandler."""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import enum
import itertools
import logging
import threading
from collections import Counter
from dataclasses import dataclass

import msgspec
import pytest

from tocsin.errors import InstrumentError
from tocsin.models import LOG_LEVELS, LogRecord
from tocsin.signals.buffer import BoundedBuffer
from tocsin.signals.context import ExecutionContext, current_execution, current_span, wrap
from tocsin.signals.handler import TocsinHandler, level_name
from tocsin.signals.logs import Logger, drain_records, plain
from tocsin.signals.sanitize import NESTED_TOO_DEEP

LEVELS = list(LOG_LEVELS)


@dataclass(frozen=True)
class FakeSpan:
    trace_id: str
    span_id: str


SPAN = FakeSpan(trace_id="a" * 32, span_id="b" * 16)


@pytest.fixture
def buffer() -> BoundedBuffer:
    return BoundedBuffer("logs", 10_000)


@pytest.fixture
def log(buffer) -> Logger:
    ticks = itertools.count(1_000)
    return Logger(buffer=buffer, service="shop", name="app", level="debug", clock=lambda: next(ticks))


def isolated_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """A stdlib logger outside the logging tree (no parents, unseen by pytest's capture) with one handler."""
    logger = logging.Logger(name, level=1)
    logger.addHandler(handler)
    return logger


@pytest.fixture
def stdlib_logger(log) -> logging.Logger:
    """A stdlib logger that sends everything to `log` through a TocsinHandler."""
    return isolated_logger("test.tocsin.stdlib", TocsinHandler(log))


def only(buffer) -> LogRecord:
    records = drain_records(buffer)
    assert len(records) == 1, records
    return records[0]


# -- levels and thresholds --------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_queues_a_record_with_fields(log, buffer, level):
    getattr(log, level)("order placed", order_id=42, total=9.5)
    record = only(buffer)
    assert record == LogRecord(
        time_ns=1_000,
        level=level,
        message="order placed",
        service="shop",
        logger="app",
        attributes={"order_id": 42, "total": 9.5},
    )


@pytest.mark.parametrize("threshold", LEVELS)
def test_threshold_keeps_levels_at_or_above_it(buffer, threshold):
    log = Logger(buffer=buffer, level=threshold)
    for level in LEVELS:
        getattr(log, level)(level)
    kept = [record.message for record in drain_records(buffer)]
    assert kept == LEVELS[LEVELS.index(threshold) :]
    assert [log.is_enabled_for(level) for level in LEVELS] == [level in kept for level in LEVELS]


def test_default_level_is_info(buffer):
    log = Logger(buffer=buffer)
    log.debug("hidden")
    log.info("shown")
    assert log.level == "info"
    assert [record.message for record in drain_records(buffer)] == ["shown"]


def test_changing_the_level_turns_methods_on_and_off(buffer):
    log = Logger(buffer=buffer, level="error")
    log.warning("dropped")
    log.level = "debug"
    log.debug("kept 1")
    log.warning("kept 2")
    log.level = "critical"
    log.error("dropped")
    log.critical("kept 3")
    assert [record.message for record in drain_records(buffer)] == ["kept 1", "kept 2", "kept 3"]


def test_exception_follows_the_error_threshold(buffer):
    log = Logger(buffer=buffer, level="critical")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    assert drain_records(buffer) == []


@pytest.mark.parametrize("bad", ["verbose", "INFO", "", None, 20])
def test_invalid_level_names_the_allowed_values(buffer, bad):
    with pytest.raises(InstrumentError, match="debug, info, warning, error, critical"):
        Logger(buffer=buffer, level=bad)
    log = Logger(buffer=buffer)
    with pytest.raises(InstrumentError, match="log level must be one of"):
        log.level = bad
    with pytest.raises(InstrumentError, match="log level must be one of"):
        log.is_enabled_for(bad)
    with pytest.raises(InstrumentError, match="log level must be one of"):
        log.record(bad, "m", {}, name="x", time_ns=1)
    assert log.level == "info"


def test_clock_defaults_to_wall_time_in_ns(buffer):
    import time

    before = time.time_ns()
    Logger(buffer=buffer).info("now")
    after = time.time_ns()
    assert before <= only(buffer).time_ns <= after


# -- exceptions -------------------------------------------------------------------------------------


def explode() -> None:
    raise KeyError("missing")


def test_exception_records_type_message_and_traceback(log, buffer):
    try:
        explode()
    except KeyError:
        log.exception("lookup failed", key="sku")
    record = only(buffer)
    assert record.level == "error"
    assert record.attributes["key"] == "sku"
    assert record.attributes["exception.type"] == "KeyError"
    assert record.attributes["exception.message"] == "'missing'"
    stack = record.attributes["exception.stacktrace"]
    assert stack.startswith("Traceback (most recent call last):")
    assert "in explode" in stack
    assert stack.rstrip().endswith("KeyError: 'missing'")


def test_exception_type_of_a_non_builtin_is_module_qualified(log, buffer):
    try:
        raise msgspec.ValidationError("bad")
    except msgspec.ValidationError:
        log.exception("decode")
    assert only(buffer).attributes["exception.type"] == "msgspec.ValidationError"


def test_exception_outside_an_except_block_is_a_plain_error(log, buffer):
    log.exception("no exception here")
    record = only(buffer)
    assert record.level == "error"
    assert record.attributes == {}


# -- bind and child ---------------------------------------------------------------------------------


def test_bind_adds_fields_and_call_fields_win(log, buffer):
    request_log = log.bind(request_id="r1", user="ann")
    request_log.info("hit", user="bob", path="/")
    record = only(buffer)
    assert record.attributes == {"request_id": "r1", "user": "bob", "path": "/"}
    assert record.logger == "app"
    assert record.service == "shop"


def test_bind_stacks_and_leaves_the_parent_alone(log, buffer):
    inner = log.bind(a=1, b=1).bind(b=2, c=3)
    inner.info("inner")
    log.info("outer")
    inner_record, outer_record = drain_records(buffer)
    assert inner_record.attributes == {"a": 1, "b": 2, "c": 3}
    assert outer_record.attributes == {}
    assert dict(inner.fields) == {"a": 1, "b": 2, "c": 3}
    assert dict(log.fields) == {}


def test_child_renames_keeps_fields_and_shares_the_buffer(log, buffer):
    db_log = log.bind(tenant="t1").child("app.db")
    db_log.warning("slow query", ms=120)
    record = only(buffer)
    assert record.logger == "app.db"
    assert record.attributes == {"tenant": "t1", "ms": 120}
    assert db_log.name == "app.db"
    assert log.name == "app"


def test_derived_loggers_start_at_the_parent_level_then_keep_their_own(buffer):
    parent = Logger(buffer=buffer, level="warning")
    child = parent.child("c")
    assert child.level == "warning"
    child.level = "debug"
    child.debug("child debug")
    parent.debug("parent debug")
    assert [record.message for record in drain_records(buffer)] == ["child debug"]


def test_a_field_may_be_called_message(log, buffer):
    log.info("text", message="a field", level="x")
    record = only(buffer)
    assert record.message == "text"
    assert record.attributes == {"message": "a field", "level": "x"}


def test_repr_names_logger_and_level(log):
    assert repr(log.bind(a=1)) == "<Logger 'app' level=debug fields=1>"


# -- context capture --------------------------------------------------------------------------------


def test_records_carry_the_current_span_and_execution(log, buffer):
    span_token = current_span.set(SPAN)
    execution_token = current_execution.set(ExecutionContext("run-7", step="charge"))
    try:
        log.info("inside")
    finally:
        current_execution.reset(execution_token)
        current_span.reset(span_token)
    log.info("outside")
    inside, outside = drain_records(buffer)
    assert (inside.trace_id, inside.span_id) == ("a" * 32, "b" * 16)
    assert (inside.execution_id, inside.step) == ("run-7", "charge")
    assert (outside.trace_id, outside.span_id, outside.execution_id, outside.step) == (None,) * 4


def test_context_is_read_at_the_call_not_at_drain(log, buffer):
    token = current_span.set(SPAN)
    log.info("during")
    current_span.reset(token)
    other = current_span.set(FakeSpan(trace_id="c" * 32, span_id="d" * 16))
    try:
        assert only(buffer).span_id == "b" * 16
    finally:
        current_span.reset(other)


def test_execution_without_a_step(log, buffer):
    token = current_execution.set(ExecutionContext("run-1"))
    try:
        log.info("x")
    finally:
        current_execution.reset(token)
    record = only(buffer)
    assert (record.execution_id, record.step, record.trace_id) == ("run-1", None, None)


async def test_each_asyncio_task_logs_with_its_own_context(log, buffer):
    async def work(number: int) -> None:
        current_span.set(FakeSpan(trace_id=f"{number:032x}", span_id=f"{number:016x}"))
        current_execution.set(ExecutionContext(f"run-{number}", step="s"))
        await asyncio.sleep(0)  # let the other tasks set theirs before this one logs
        log.info("task", number=number)

    await asyncio.gather(*(work(number) for number in range(1, 6)))
    records = drain_records(buffer)
    assert len(records) == 5
    for record in records:
        number = record.attributes["number"]
        assert record.trace_id == f"{number:032x}"
        assert record.span_id == f"{number:016x}"
        assert record.execution_id == f"run-{number}"
    assert current_span.get() is None


async def test_a_task_inherits_the_context_of_its_creator(log, buffer):
    token = current_span.set(SPAN)
    try:
        await asyncio.create_task(asyncio.to_thread(wrap(log.info), "in a thread from a task"))
        await asyncio.create_task(_log_later(log))
    finally:
        current_span.reset(token)
    assert [record.span_id for record in drain_records(buffer)] == ["b" * 16, "b" * 16]


async def _log_later(log: Logger) -> None:
    await asyncio.sleep(0)
    log.info("in a task")


def test_threads_see_the_context_only_when_it_is_copied(log, buffer):
    token = current_execution.set(ExecutionContext("run-9", step="load"))
    try:
        copied = contextvars.copy_context()
        threads = [
            threading.Thread(target=copied.run, args=(log.info, "copied")),
            threading.Thread(target=wrap(log.info), args=("wrapped",)),
            threading.Thread(target=log.info, args=("bare",)),
        ]
    finally:
        current_execution.reset(token)
    for thread in threads:
        thread.start()
        thread.join()
    by_message = {record.message: record for record in drain_records(buffer)}
    assert by_message["copied"].execution_id == "run-9"
    assert by_message["wrapped"].step == "load"
    assert by_message["bare"].execution_id is None


def test_many_threads_log_without_losing_records(buffer):
    log = Logger(buffer=buffer)

    def work(number: int) -> None:
        current_execution.set(ExecutionContext(f"run-{number}"))
        for index in range(500):
            log.info("tick", thread=number, index=index)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = drain_records(buffer)
    assert len(records) == 4_000
    assert buffer.dropped == 0
    for record in records:
        assert record.execution_id == f"run-{record.attributes['thread']}"
    for number in range(8):  # each thread's records stay in its own call order
        indexes = [r.attributes["index"] for r in records if r.attributes["thread"] == number]
        assert indexes == list(range(500))


# -- buffer behaviour -------------------------------------------------------------------------------


def test_a_full_buffer_drops_and_counts_without_blocking():
    warnings: list[str] = []
    buffer = BoundedBuffer("logs", 3, on_first_drop=warnings.append)
    log = Logger(buffer=buffer)
    for index in range(10):
        assert log.info("record", index=index) is None
    assert buffer.dropped == 7
    assert len(warnings) == 1
    assert "logs buffer is full" in warnings[0]
    assert [record.attributes["index"] for record in drain_records(buffer)] == [0, 1, 2]
    log.info("room again")
    assert only(buffer).message == "room again"


def test_drops_from_other_threads_are_counted_too():
    buffer = BoundedBuffer("logs", 1)
    log = Logger(buffer=buffer)
    log.info("fills it")
    threads = [threading.Thread(target=lambda: [log.error("dropped") for _ in range(100)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert buffer.dropped == 400
    assert only(buffer).message == "fills it"


def test_drain_preserves_order_and_honours_the_limit(log, buffer):
    api = log.child("api").bind(route="/x")
    for index in range(10):
        (api if index % 2 else log).info(f"m{index}")
    first = drain_records(buffer, limit=4)
    rest = drain_records(buffer)
    assert [record.message for record in first + rest] == [f"m{index}" for index in range(10)]
    assert [record.time_ns for record in first + rest] == list(range(1_000, 1_010))
    assert [record.logger for record in first] == ["app", "api", "app", "api"]
    assert drain_records(buffer) == []


def test_drained_records_encode_and_decode_as_log_records(log, buffer):
    token = current_span.set(SPAN)
    try:
        log.bind(tags={"a", "b"}).error(ValueError("odd"), when=datetime.date(2024, 5, 1), raw=b"\x00")
    finally:
        current_span.reset(token)
    records = drain_records(buffer)
    decoded = msgspec.json.decode(msgspec.json.encode(records), type=list[LogRecord])
    assert decoded == records
    assert decoded[0].message == "odd"
    assert decoded[0].attributes["when"] == "2024-05-01"


# -- odd messages and values ------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Mode(str, enum.Enum):  # noqa: UP042 - the mixin form, whose str() is "Mode.FAST" on 3.11
    FAST = "fast"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


class Custom:
    def __str__(self) -> str:
        return "custom!"


@pytest.mark.parametrize(
    ("message", "stored"),
    [
        (42, "42"),
        (None, "None"),
        (3.5, "3.5"),
        (Custom(), "custom!"),
        (["a", 1], "['a', 1]"),
        (Mode.FAST, str(Mode.FAST)),
        (Unprintable(), "<unprintable Unprintable: RuntimeError>"),
    ],
)
def test_non_str_messages_are_stored_as_str(log, buffer, message, stored):
    log.info(message)
    assert only(buffer).message == stored


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("text", "text"),
        (7, 7),
        (2**80, 2**80),
        (1.25, 1.25),
        (True, True),
        (None, None),
        ([1, "a", None], [1, "a", None]),
        ((1, 2), [1, 2]),
        ({"k": [1, {"n": 2}]}, {"k": [1, {"n": 2}]}),
        ({1: "one", (2, 3): "pair"}, {"1": "one", "(2, 3)": "pair"}),
        ({"x": Custom()}, {"x": "custom!"}),
        ([Custom(), b"ab"], ["custom!", "b'ab'"]),
        ({3}, "{3}"),
        (b"bytes", "b'bytes'"),
        (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05"),
        (Color.RED, "Color.RED"),
        (Level.HIGH, 3),
        (Mode.FAST, "fast"),
        (Custom(), "custom!"),
        (Unprintable(), "<unprintable Unprintable: RuntimeError>"),
    ],
)
def test_field_values_are_kept_when_json_friendly_else_str(log, buffer, value, stored):
    log.info("m", value=value)
    kept = only(buffer).attributes["value"]
    assert kept == stored
    assert type(kept) is type(stored)


def test_plain_stops_at_deep_or_recursive_nesting_with_a_counted_placeholder():
    loop: list = []
    loop.append(loop)
    cuts: Counter[str] = Counter()
    converted = plain(loop, 0, cuts)
    depth = 0
    while isinstance(converted, list):
        converted, depth = converted[0], depth + 1
    assert depth == 16
    assert converted == NESTED_TOO_DEEP
    assert cuts == {"nesting": 1}


def test_bound_values_are_converted_too(log, buffer):
    log.bind(obj=Custom()).info("m")
    assert only(buffer).attributes == {"obj": "custom!"}


# -- stdlib handler ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("levelno", "level"),
    [
        (logging.NOTSET, "debug"),
        (5, "debug"),
        (logging.DEBUG, "debug"),
        (15, "debug"),
        (logging.INFO, "info"),
        (25, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (45, "error"),
        (logging.CRITICAL, "critical"),
        (60, "critical"),
        (-3, "debug"),
    ],
)
def test_level_name_maps_stdlib_numbers(levelno, level):
    assert level_name(levelno) == level


def test_handler_maps_levels_message_and_logger_name(stdlib_logger, buffer):
    stdlib_logger.handle(logging.makeLogRecord({"name": stdlib_logger.name, "levelno": 0, "msg": "notset"}))
    stdlib_logger.log(1, "very low")
    stdlib_logger.debug("d %d", 1)
    stdlib_logger.info("user %s did %s", "ann", "login")
    stdlib_logger.warning("w")
    stdlib_logger.error("e")
    stdlib_logger.critical("c %(x)s", {"x": "mapped"})
    records = drain_records(buffer)
    assert [(r.level, r.message) for r in records] == [
        ("debug", "notset"),
        ("debug", "very low"),
        ("debug", "d 1"),
        ("info", "user ann did login"),
        ("warning", "w"),
        ("error", "e"),
        ("critical", "c mapped"),
    ]
    assert {(r.logger, r.service) for r in records} == {("test.tocsin.stdlib", "shop")}


def test_handler_turns_extra_into_attributes(stdlib_logger, buffer):
    stdlib_logger.info("paid", extra={"order_id": 7, "amount": 12.5, "items": ["a"], "who": Custom()})
    record = only(buffer)
    assert record.attributes == {"order_id": 7, "amount": 12.5, "items": ["a"], "who": "custom!"}


def test_handler_keeps_the_logger_bound_fields(buffer):
    handler = TocsinHandler(Logger(buffer=buffer, service="svc").bind(region="eu", team="core"))
    isolated_logger("test.tocsin.bound", handler).warning("w", extra={"region": "us", "x": 1})
    assert only(buffer).attributes == {"region": "us", "team": "core", "x": 1}


def test_handler_ignores_attributes_a_formatter_added(stdlib_logger, buffer):
    formatting = logging.StreamHandler(stream=open("/dev/null", "w"))  # noqa: SIM115 - closed below
    formatting.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    stdlib_logger.handlers.insert(0, formatting)
    try:
        stdlib_logger.info("formatted first")
    finally:
        stdlib_logger.removeHandler(formatting)
        formatting.stream.close()
    record = only(buffer)
    assert record.message == "formatted first"
    assert record.attributes == {}


def test_handler_records_exc_info(stdlib_logger, buffer):
    try:
        explode()
    except KeyError:
        stdlib_logger.exception("lookup failed", extra={"sku": "x1"})
    record = only(buffer)
    assert record.level == "error"
    assert record.attributes["sku"] == "x1"
    assert record.attributes["exception.type"] == "KeyError"
    assert record.attributes["exception.message"] == "'missing'"
    assert "in explode" in record.attributes["exception.stacktrace"]


def test_handler_with_exc_info_but_no_exception(stdlib_logger, buffer):
    stdlib_logger.error("no exception", exc_info=True)
    assert only(buffer).attributes == {}


def test_handler_uses_the_record_creation_time(stdlib_logger, buffer):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "at a time", (), None)
    record.created = 1_700_000_000.5
    stdlib_logger.handle(record)
    assert only(buffer).time_ns == 1_700_000_000_500_000_000


def test_handler_captures_span_and_execution(stdlib_logger, buffer):
    span_token = current_span.set(SPAN)
    execution_token = current_execution.set(ExecutionContext("run-3", step="ship"))
    try:
        stdlib_logger.info("in context")
    finally:
        current_execution.reset(execution_token)
        current_span.reset(span_token)
    record = only(buffer)
    assert (record.trace_id, record.span_id, record.execution_id, record.step) == (
        "a" * 32,
        "b" * 16,
        "run-3",
        "ship",
    )


def test_handler_respects_the_tocsin_logger_level(stdlib_logger, log, buffer):
    log.level = "warning"
    stdlib_logger.info("below")
    stdlib_logger.error("above")
    assert only(buffer).message == "above"


def test_handler_reports_a_bad_format_and_carries_on(stdlib_logger, buffer, monkeypatch):
    reported: list[logging.LogRecord] = []
    handler = stdlib_logger.handlers[0]
    monkeypatch.setattr(handler, "handleError", reported.append)
    stdlib_logger.info("needs %d", "not a number")
    stdlib_logger.info("fine")
    assert [record.msg for record in reported] == ["needs %d"]
    assert only(buffer).message == "fine"


class LogsWhileFormatting:
    """An argument whose formatting logs through stdlib: without a guard, emit would recurse forever."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def __str__(self) -> str:
        self.logger.info("formatting %s", self)
        return "value"


def test_handler_does_not_recurse_when_logging_inside_emit(stdlib_logger, buffer):
    handler = stdlib_logger.handlers[0]
    stdlib_logger.info("outer %s", LogsWhileFormatting(stdlib_logger))
    assert only(buffer).message == "outer value"
    assert handler.reentrant_dropped == 1


def test_handler_does_not_recurse_through_a_buffer_callback():
    def on_batch() -> None:  # e.g. a flusher wake-up that logs through stdlib logging
        logger.warning("batch ready")

    buffer = BoundedBuffer("logs", 10, batch_size=1, on_batch=on_batch)
    handler = TocsinHandler(Logger(buffer=buffer))
    logger = isolated_logger("test.tocsin.callback", handler)
    logger.warning("first")
    assert [record.message for record in drain_records(buffer)] == ["first"]
    assert handler.reentrant_dropped == 1


def test_the_guard_is_per_thread(stdlib_logger, buffer):
    handler = stdlib_logger.handlers[0]
    handler._guard.emitting = True  # this thread is "inside emit"; another thread must still log
    try:
        thread = threading.Thread(target=stdlib_logger.info, args=("from another thread",))
        thread.start()
        thread.join()
        stdlib_logger.info("dropped here")
    finally:
        handler._guard.emitting = False
    assert only(buffer).message == "from another thread"
    assert handler.reentrant_dropped == 1
