"""A stdlib `logging.Handler` that sends stdlib log records into tocsin.

`logging.getLogger().addHandler(TocsinHandler(monitor.log))` makes every stdlib record a tocsin record:
the level is mapped, `extra=` fields and `exc_info` become attributes, and the trace, span and execution
come from `tocsin.signals.context` on the thread that logged. Attach it directly, not behind a QueueHandler: it
never blocks, and a listener thread would not see the caller's context.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tocsin.models import LogLevel
from tocsin.signals.exceptions import exception_fields
from tocsin.signals.logs import Logger

# Attributes every stdlib LogRecord has (plus what Formatter adds); anything else came from `extra=`.
_PLAIN_RECORD = frozenset(vars(logging.makeLogRecord({})))
STANDARD_ATTRIBUTES = _PLAIN_RECORD | {"message", "asctime"}
_LEVELS: tuple[LogLevel, ...] = ("debug", "debug", "info", "warning", "error", "critical")
_STDLIB_LEVELS: dict[int, LogLevel] = {number * 10: level for number, level in enumerate(_LEVELS)}


def level_name(levelno: int) -> LogLevel:
    """The tocsin level for a stdlib level number: the highest one at or below it (debug below DEBUG)."""
    return _STDLIB_LEVELS.get(levelno) or _LEVELS[min(max(levelno // 10, 0), 5)]


class _EmitGuard(threading.local):
    """Per thread: whether it is inside `TocsinHandler.emit` (a class default avoids a lookup miss)."""

    emitting = False


class TocsinHandler(logging.Handler):
    """Hands stdlib log records to a tocsin Logger, which keeps its own level threshold and bound fields.

    A record logged while this handler is already emitting on the same thread (tocsin code, a `__str__`
    or a buffer callback logging through stdlib) is dropped and counted in `reentrant_dropped`, so the
    handler never recurses.
    """

    def __init__(self, logger: Logger, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.logger = logger
        self.reentrant_dropped = 0
        self._guard = _EmitGuard()

    def emit(self, record: logging.LogRecord) -> None:
        """Queue `record` in the tocsin logger's buffer (the logger's level applies)."""
        guard = self._guard
        if guard.emitting:
            self.reentrant_dropped += 1
            return
        guard.emitting = True
        try:
            self.logger.record(
                level_name(record.levelno),
                record.getMessage(),
                _fields(record),
                name=record.name,
                time_ns=int(record.created * 1e9),
            )
        except Exception:
            self.handleError(record)
        finally:
            guard.emitting = False


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    attributes = vars(record)
    if len(attributes) == len(_PLAIN_RECORD):  # extras cannot replace standard attributes, only add to them
        fields = {}
    else:
        fields = {key: value for key, value in attributes.items() if key not in STANDARD_ATTRIBUTES}
    if record.exc_info and record.exc_info[1] is not None:
        fields.update(exception_fields(record.exc_info[1]))
    return fields
