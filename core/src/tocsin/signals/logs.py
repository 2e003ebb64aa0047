"""tocsin's structured logger: `log.info("message", **fields)` queues a record for the flusher.

The caller pays for a clock read, two contextvar reads, one small tuple and a `BoundedBuffer.put`; nothing is
formatted or encoded on the hot path (only `exception` formats its traceback, which must be read at the call).
`drain_records` turns what was queued into `LogRecord` Structs on the flusher's side. A level below the
threshold costs one call of a no-op function: setting `level` puts it in place of the disabled methods.

Values are captured by reference at the call and converted when drained, so a mutable field value changed
after the call is stored as it is at drain time (as with stdlib logging's deferred formatting).

A queued entry holds None, not an empty dict, where a call has no fields or a logger none bound: a tuple that
holds any dict stays tracked by the garbage collector for life, and a tight loop's queued entries then pushed
full collections of the whole heap (a third of the ingest time at 100k records); entries of scalars and None
are untracked at their first collection.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from tocsin.errors import InstrumentError
from tocsin.models import LOG_LEVELS, LogLevel, LogRecord
from tocsin.signals.buffer import BoundedBuffer, approx_size
from tocsin.signals.context import current_execution, current_span
from tocsin.signals.exceptions import exception_fields, safe_str
from tocsin.signals.sanitize import MAX_DEPTH, NESTED_TOO_DEEP

# The same numbers as stdlib logging, so a stdlib level maps by comparison.
LEVEL_NUMBERS: dict[str, int] = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

# (service, logger name, bound fields or None): shared by every entry one Logger queues.
Identity: TypeAlias = tuple[str, str, Mapping[str, Any] | None]
# What the hot path queues: (time_ns, level, message, call fields or None, identity, span, execution).
LogEntry: TypeAlias = tuple[int, LogLevel, Any, dict[str, Any] | None, Identity, Any, Any]

_span_get = current_span.get
_execution_get = current_execution.get


def _disabled(message: object, /, **fields: Any) -> None:
    """Stands in for a level method while that level is filtered out."""


def check_level(level: object) -> LogLevel:
    """Return `level` if it is a tocsin log level name, else raise InstrumentError naming the allowed ones."""
    if level not in LEVEL_NUMBERS:
        raise InstrumentError(f"log level must be one of {', '.join(LOG_LEVELS)}; got {level!r}")
    return level  # type: ignore[return-value]


class Logger:
    """A structured logger that queues records into a BoundedBuffer without blocking or formatting.

    Records carry the trace and span of `tocsin.signals.context.current_span` and the execution and step of
    `tocsin.signals.context.current_execution` as they are when the method is called. `bind` and `child` derive
    loggers that share the buffer; each derived logger starts at its parent's level and keeps its own.
    """

    def __init__(
        self,
        *,
        buffer: BoundedBuffer[LogEntry],
        service: str = "",
        name: str = "",
        level: LogLevel = "info",
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._buffer = buffer
        self._put = buffer.put
        self._clock = clock
        self._identity: Identity = (service, name, None)
        self.level = level

    @property
    def name(self) -> str:
        """The logger name stored on every record."""
        return self._identity[1]

    @property
    def fields(self) -> Mapping[str, Any]:
        """The fields bound to this logger, added to every record it queues."""
        bound = self._identity[2]
        return {} if bound is None else bound

    @property
    def level(self) -> LogLevel:
        """The lowest level that is recorded; setting it to an unknown name raises InstrumentError."""
        return self._level

    @level.setter
    def level(self, level: LogLevel) -> None:
        self._level = check_level(level)
        self._threshold = threshold = LEVEL_NUMBERS[level]
        for method, number in (*LEVEL_NUMBERS.items(), ("exception", LEVEL_NUMBERS["error"])):
            if number < threshold:
                setattr(self, method, _disabled)
            else:
                self.__dict__.pop(method, None)

    def is_enabled_for(self, level: LogLevel) -> bool:
        """Whether a record at `level` would be queued."""
        return LEVEL_NUMBERS[check_level(level)] >= self._threshold

    def debug(self, message: object, /, **fields: Any) -> None:
        """Queue a debug record."""
        self._put((self._clock(), "debug", message, fields or None, self._identity, _span_get(),
                   _execution_get()))

    def info(self, message: object, /, **fields: Any) -> None:
        """Queue an info record."""
        self._put((self._clock(), "info", message, fields or None, self._identity, _span_get(),
                   _execution_get()))

    def warning(self, message: object, /, **fields: Any) -> None:
        """Queue a warning record."""
        self._put((self._clock(), "warning", message, fields or None, self._identity, _span_get(),
                   _execution_get()))

    def error(self, message: object, /, **fields: Any) -> None:
        """Queue an error record."""
        self._put((self._clock(), "error", message, fields or None, self._identity, _span_get(),
                   _execution_get()))

    def critical(self, message: object, /, **fields: Any) -> None:
        """Queue a critical record."""
        self._put((self._clock(), "critical", message, fields or None, self._identity, _span_get(),
                   _execution_get()))

    def exception(self, message: object, /, **fields: Any) -> None:
        """Queue an error record with the exception being handled (type, message, traceback) as attributes."""
        exc = sys.exception()
        if exc is not None:
            fields.update(exception_fields(exc))
        self._put((self._clock(), "error", message, fields or None, self._identity, _span_get(),
                   _execution_get()))

    def record(
        self, level: LogLevel, message: object, fields: dict[str, Any], *, name: str, time_ns: int
    ) -> None:
        """Queue a record made elsewhere (e.g. by stdlib logging) under another logger name, if enabled.

        `fields` is taken over, not copied (its values are converted in place when drained): pass a new dict.
        """
        number = LEVEL_NUMBERS.get(level)
        if number is None:
            check_level(level)
        elif number >= self._threshold:
            identity = (self._identity[0], name, self._identity[2])
            self._put((time_ns, level, message, fields or None, identity, _span_get(), _execution_get()))

    def bind(self, **fields: Any) -> Logger:
        """A logger that adds `fields` to every record (fields passed at the call win over bound ones)."""
        service, name, bound = self._identity
        return self._derive((service, name, {**(bound or {}), **fields} or None))

    def child(self, name: str) -> Logger:
        """A logger with the same bound fields that records under `name`."""
        service, _, bound = self._identity
        return self._derive((service, name, bound))

    def _derive(self, identity: Identity) -> Logger:
        service, name, _ = identity
        other = Logger(buffer=self._buffer, service=service, name=name, level=self._level, clock=self._clock)
        other._identity = identity
        return other

    def __repr__(self) -> str:
        return f"<Logger {self.name!r} level={self._level} fields={len(self.fields)}>"


def entry_size(entry: LogEntry) -> int:
    """The bytes one queued entry holds on its own: the tuple, the message and the call's fields (the logger's
    identity and the span are shared with other entries and not counted)."""
    return sys.getsizeof(entry) + sys.getsizeof(entry[2]) + approx_size(entry[3])


def drain_records(
    buffer: BoundedBuffer[LogEntry], limit: int | None = None, *, cuts: Counter[str] | None = None
) -> list[LogRecord]:
    """Remove up to `limit` queued entries (all by default) and return them as LogRecords, oldest first;
    nesting cut from field values is counted in `cuts`."""
    return [_to_record(entry, cuts) for entry in buffer.drain(limit)]


def _to_record(entry: LogEntry, cuts: Counter[str] | None) -> LogRecord:
    time_ns, level, message, fields, (service, name, bound), span, execution = entry
    if span is not None:
        trace_id, span_id = span.trace_id, span.span_id
    else:
        trace_id = span_id = None
    if execution is not None:
        execution_id, step = execution.execution_id, execution.step
    else:
        execution_id = step = None
    attributes = {**bound, **(fields or {})} if bound else fields or {}  # the entry's own: converted in place
    for key, value in attributes.items():
        if type(value) not in _SCALARS:
            attributes[key] = plain(value, 0, cuts)
    return LogRecord(
        time_ns=time_ns,
        level=level,
        message=message if type(message) is str else safe_str(message),
        service=service,
        logger=name,
        trace_id=trace_id,
        span_id=span_id,
        execution_id=execution_id,
        step=step,
        attributes=attributes,
    )


_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any, depth: int = 0, cuts: Counter[str] | None = None) -> Any:
    """`value` as JSON-friendly data: scalars, lists and str-keyed dicts kept, anything else as str(value).

    Nesting deeper than `MAX_DEPTH` levels is cut to a placeholder and counted in `cuts["nesting"]`.
    """
    if type(value) in _SCALARS:
        return value
    if isinstance(value, list | tuple | dict):
        if depth >= MAX_DEPTH:
            if cuts is not None:
                cuts["nesting"] += 1
            return NESTED_TOO_DEEP
        if isinstance(value, dict):
            return {safe_str(key): plain(item, depth + 1, cuts) for key, item in value.items()}
        return [plain(item, depth + 1, cuts) for item in value]
    # Subclasses of the scalars (enums, str/int subclasses) become their plain base value.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    return safe_str(value)
