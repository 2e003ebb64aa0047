"""One signal's way into storage: whole batches, so that one bad record never stops the rest.

A write fails either because of the storage or because of a record, and the two need opposite answers:

- **transient** (`StorageUnavailable`, `OSError`, a timeout: locked, busy, disk full, connection lost): the
  whole batch is kept, bounded by `limit`, and tried again after a doubling backoff (an explicit flush tries
  at once);
- **anything else**: every record of the batch is made storable (`tocsin.signals.sanitize`) and the batch is
  written again; if it still fails, it is halved until each record that cannot be stored is found, and those
  are dropped and counted with their reason while the others are stored. When not one record can be stored
  on its own and the errors do not name a bad value, the storage is at fault, not the records: the batch is
  kept for retry instead.

`report_outcome` turns each `WriteOutcome` into tocsin's own metrics (`tocsin_records_written_total`,
`tocsin_records_dropped_total{signal,reason}`, `tocsin_records_sanitized_total{signal,reason}`,
`tocsin_flush_errors_total`), a warning in the `tocsin` log, and a `system/records_dropped` event.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from tocsin.errors import StorageError, StorageUnavailable, UnstorableRecord
from tocsin.models import Event
from tocsin.signals.sanitize import sanitize

if TYPE_CHECKING:
    from tocsin.signals.metrics import MetricsRegistry

RETRY_LIMIT = 10_000  # records kept for retry per signal while storage is failing
BACKOFF_MAX_S = 30.0

Writer = Callable[[list[Any]], Awaitable[None]]

internal_log = logging.getLogger("tocsin")

_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (UnicodeError, "unencodable_text"),
    (OverflowError, "number_out_of_range"),
    (RecursionError, "nesting"),
)


def is_transient(error: BaseException) -> bool:
    """A failure of the storage that the same write may get past later (locked, busy, disk, network)."""
    return isinstance(error, StorageUnavailable | OSError | TimeoutError)


def is_record_error(error: BaseException) -> bool:
    """A failure that names a value no backend can hold: the record is at fault, not the storage."""
    return isinstance(error, UnstorableRecord | ValueError | TypeError | OverflowError | RecursionError
                      | msgspec.EncodeError)


def drop_reason(error: BaseException) -> str:
    """A short, low-cardinality label for why a record was dropped."""
    if isinstance(error, UnstorableRecord):
        return error.reason
    return next((reason for kind, reason in _REASONS if isinstance(error, kind)), "unstorable")


@dataclass
class WriteOutcome:
    """What one `BatchWriter.write` did: records stored, kept for retry, dropped and sanitized (by reason)."""

    written: int = 0
    kept: int = 0
    deferred: bool = False
    dropped: Counter[str] = field(default_factory=Counter)
    sanitized: Counter[str] = field(default_factory=Counter)
    error: BaseException | None = None
    examples: dict[str, str] = field(default_factory=dict)  # reason -> the error of one dropped record


class BatchWriter:
    """Writes one signal's batches (plus what an earlier transient failure left) and classifies failures."""

    def __init__(self, signal: str, *, limit: int = RETRY_LIMIT, backoff_s: float = 0.05) -> None:
        self.signal = signal
        self.limit = limit
        self.pending: list[Any] = []
        self._backoff_first = backoff_s
        self._backoff = backoff_s
        self._retry_at = 0.0

    async def write(self, items: Sequence[Any], writer: Writer, *, now: float, force: bool = True) -> WriteOutcome:
        """Write `items` after anything pending; `now` is a monotonic time, `force` ignores the backoff."""
        outcome = WriteOutcome()
        batch = [*self.pending, *items] if self.pending else list(items)
        self.pending = []
        if not batch:
            return outcome
        if not force and now < self._retry_at:
            outcome.deferred = True
            self._keep(batch, outcome)
            return outcome
        try:
            await writer(batch)
        except Exception as error:
            outcome.error = error
            if is_transient(error):
                self._keep(batch, outcome)
                self._back_off(now)
                return outcome
        else:
            outcome.written = len(batch)
            self._backoff = self._backoff_first
            return outcome
        await self._salvage(batch, writer, outcome, now)
        return outcome

    async def _salvage(self, batch: list[Any], writer: Writer, outcome: WriteOutcome, now: float) -> None:
        """Sanitize the batch, write it again, and halve it down to the records that cannot be stored."""
        cleaned = [sanitize(record, outcome.sanitized) for record in batch]
        failures: list[tuple[Any, BaseException]] = []
        stopped = await self._halve(cleaned, writer, outcome, failures)
        if stopped is not None:  # the storage failed mid-way: keep what is left for the next try
            self._keep([record for record, _ in failures], outcome)
            self._back_off(now)
            return
        if not failures:
            self._backoff = self._backoff_first
            return
        if outcome.written == 0 and not all(is_record_error(error) for _, error in failures):
            self._keep([record for record, _ in failures], outcome)  # nothing stored at all: blame the storage
            self._back_off(now)
            return
        for _, error in failures:
            reason = drop_reason(error)
            outcome.dropped[reason] += 1
            outcome.examples.setdefault(reason, f"{type(error).__name__}: {error}"[:300])

    async def _halve(self, batch: list[Any], writer: Writer, outcome: WriteOutcome,
                     failures: list[tuple[Any, BaseException]]) -> BaseException | None:
        """Write `batch`, or its halves where it fails; failing single records go to `failures`.

        Returns the error that stopped it when that error is about the storage, not a record (transient, or
        of a kind that names no value); the records not written are then in `failures`.
        """
        try:
            await writer(batch)
        except Exception as error:
            if is_transient(error) or not (is_record_error(error) or type(error) is StorageError):
                failures.extend((record, error) for record in batch)
                return error  # not about a record: stop here
            if len(batch) == 1:
                failures.append((batch[0], error))
                return None
            middle = len(batch) // 2
            stopped = await self._halve(batch[:middle], writer, outcome, failures)
            if stopped is not None:
                failures.extend((record, stopped) for record in batch[middle:])
                return stopped
            return await self._halve(batch[middle:], writer, outcome, failures)
        outcome.written += len(batch)
        return None

    def _keep(self, batch: list[Any], outcome: WriteOutcome) -> None:
        kept = batch[-self.limit:]
        self.pending = kept
        outcome.kept = len(kept)
        if len(batch) > len(kept):
            outcome.dropped["retry_overflow"] += len(batch) - len(kept)

    def _back_off(self, now: float) -> None:
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)


def report_outcome(outcome: WriteOutcome, signal: str, *, metrics: MetricsRegistry, emit: Callable[[Event], None],
                   now_ns: Callable[[], int]) -> None:
    """Count one write's outcome in tocsin's own metrics, the `tocsin` log and events."""
    if outcome.written:
        metrics.counter("tocsin_records_written_total").inc(outcome.written, signal=signal)
        if signal in ("logs", "spans"):
            emit(Event(topic="logs" if signal == "logs" else "traces", type="written", time_ns=now_ns(),
                       data={"count": outcome.written}))
    for reason, count in outcome.sanitized.items():
        metrics.counter("tocsin_records_sanitized_total").inc(count, signal=signal, reason=reason)
    if outcome.error is not None:
        metrics.counter("tocsin_flush_errors_total").inc(signal=signal)
    if outcome.kept and not outcome.deferred:
        internal_log.warning("tocsin: writing %d %s to storage failed (will retry): %r", outcome.kept, signal,
                             outcome.error)
    for reason, count in outcome.dropped.items():
        metrics.counter("tocsin_records_dropped_total").inc(count, signal=signal, reason=reason)
        example = outcome.examples.get(reason, "")
        internal_log.warning("tocsin: dropped %d %s record(s) (%s)%s", count, signal, reason,
                             f": {example}" if example else "")
        emit(Event(topic="system", type="records_dropped", time_ns=now_ns(),
                   data={"signal": signal, "reason": reason, "count": count, "error": example}))
