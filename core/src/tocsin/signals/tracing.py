"""Spans that cost a few microseconds: parented through contextvars, sampled at the start, drained in batches.

`tracer.span(name)` returns an `ActiveSpan`: a context manager (sync and async) and a decorator. Entering
it picks the parent (`parent=`, else `tocsin.signals.context.current_span`), makes ids from a private
generator seeded from `os.urandom` (again in each forked child, so an app's `random.seed()` cannot repeat
them; never all zeros), asks the sampler, and makes the span current until exit. A dropped span still
carries ids, so children and outgoing `traceparent` headers keep the trace together with the sampled flag
off; it records nothing and is never buffered. A finished sampled span goes into the `BoundedBuffer` as is;
`Tracer.drain` turns spans into `models.Span` when the flusher asks, plus a snapshot of each span running
longer than `live_after_s`, so a long span is visible while it runs.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, get_args

import msgspec

from tocsin import models
from tocsin.errors import ConfigError, InstrumentError
from tocsin.models import SpanKind, SpanLink, SpanStatus
from tocsin.signals.buffer import BoundedBuffer
from tocsin.signals.context import current_span as _current
from tocsin.signals.exceptions import exception_fields
from tocsin.signals.sampling import AlwaysOn, Decision, ParentBased, Sampler, SamplingResult

F = TypeVar("F", bound=Callable[..., Any])

_KINDS = frozenset(get_args(SpanKind))
_STATUSES = frozenset(get_args(SpanStatus))
_SCALARS = frozenset((str, bool, int, float))
_DROP = Decision.DROP
_SAMPLE = Decision.RECORD_AND_SAMPLE
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_ids = random.Random(os.urandom(32))  # not the global `random`: an app's random.seed() must not repeat ids
if hasattr(os, "register_at_fork"):  # a forked worker must not repeat its parent's ids
    os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))
_getrandbits = _ids.getrandbits
_MISSING = contextvars.Token.MISSING
_new = object.__new__


class SpanContext(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The part of a span that crosses process boundaries: ids, the sampled flag and W3C tracestate."""

    trace_id: str
    span_id: str
    sampled: bool
    remote: bool = False
    tracestate: str = ""

    def __post_init__(self) -> None:
        if not _TRACE_ID.fullmatch(self.trace_id) or self.trace_id == "0" * 32:
            raise InstrumentError(
                f"SpanContext trace_id must be 32 lowercase hex digits, not all zero; got {self.trace_id!r}"
            )
        if not _SPAN_ID.fullmatch(self.span_id) or self.span_id == "0" * 16:
            raise InstrumentError(
                f"SpanContext span_id must be 16 lowercase hex digits, not all zero; got {self.span_id!r}"
            )


def _clean_value(value: Any) -> Any:
    """An attribute value as stored: str/bool/int/float, a homogeneous list of those, else str(value)."""
    if isinstance(value, bool):
        return bool(value)
    for scalar in (int, float, str):
        if isinstance(value, scalar):
            return scalar(value)
    if isinstance(value, list | tuple):
        items = [item if type(item) in _SCALARS else _clean_value(item) for item in value]
        if not items or (type(items[0]) in _SCALARS and all(type(item) is type(items[0]) for item in items)):
            return items
    return str(value)


def _clean_attributes(attributes: Mapping[Any, Any], limit: int) -> dict[str, Any]:
    """Copy up to `limit` attributes with str keys and storable values."""
    if len(attributes) > limit:
        attributes = dict(list(attributes.items())[:limit])
    return {
        key if type(key) is str else str(key): value if type(value) in _SCALARS else _clean_value(value)
        for key, value in attributes.items()
    }


class ActiveSpan:
    """A span (made by `Tracer.span`): before entry a context manager or decorator, then the span recording.

    Mutators do nothing on a span that is not recording (dropped by the sampler, or already ended).
    """

    __slots__ = (
        "_attributes",
        "_drops",
        "_end_ns",
        "_events",
        "_links",
        "_parent",
        "_parent_id",
        "_recording",
        "_sampled",
        "_snapshotted",
        "_span_id",
        "_start_ns",
        "_status",
        "_status_message",
        "_token",
        "_trace_id",
        "_tracer",
        "_tracestate",
        "kind",
        "name",
    )

    remote = False  # a span is always local; remote parents are SpanContexts

    # -- starting and ending ------------------------------------------------------------------------

    def __enter__(self) -> ActiveSpan:
        if self._span_id:  # started by Tracer.start_span: only make it current
            self._token = _current.set(self)
            return self
        tracer = self._tracer
        parent = self._parent
        if parent is None:
            parent = _current.get()
        if parent is None:
            trace_id = _getrandbits(128) or 1
            parent_id = 0
            tracestate = ""
        elif type(parent) is ActiveSpan:
            trace_id = parent._trace_id
            parent_id = parent._span_id
            tracestate = parent._tracestate
        else:
            trace_id = int(parent.trace_id, 16)
            parent_id = int(parent.span_id, 16)
            tracestate = parent.tracestate
        self._trace_id = trace_id
        self._span_id = _getrandbits(64) or 1
        self._parent_id = parent_id
        result = tracer.sampler.should_sample(parent, trace_id, self.name, self.kind, self._attributes, self._links)
        self._tracestate = tracestate if result.tracestate is None else result.tracestate
        if result.decision is _DROP:
            self._sampled = False
        else:
            self._record(result)
        self._token = _current.set(self)
        return self

    def _record(self, result: SamplingResult) -> None:
        """Set up a span the sampler kept: copy and limit what it starts with, note the start time."""
        tracer = self._tracer
        self._drops = None
        attributes = self._attributes
        if result.attributes:
            attributes = {**attributes, **result.attributes} if attributes else result.attributes
        if attributes:
            self._attributes = _clean_attributes(attributes, tracer.max_attributes)
            if len(self._attributes) < len(attributes):
                self._dropped(0, len(attributes) - len(self._attributes))
        else:
            self._attributes = {}
        links = self._links
        if links:
            self._links = links[: tracer.max_links]
            if len(self._links) < len(links):
                self._dropped(2, len(links) - len(self._links))
        self._events = None
        self._status = "unset"
        self._status_message = ""
        self._end_ns = None
        self._recording = True
        self._start_ns = tracer._clock()
        if result.decision is _SAMPLE:
            self._sampled = True
            self._snapshotted = False
            tracer._live.add(self)
        else:
            self._sampled = False

    def end(self, end_ns: int | None = None) -> None:
        """End the span now (or at `end_ns`); a sampled span is queued for storage. Later calls do nothing."""
        if not self._recording:
            return
        self._recording = False
        tracer = self._tracer
        self._end_ns = tracer._clock() if end_ns is None else end_ns
        if self._sampled:
            tracer._live.discard(self)
            tracer._buffer.put(self)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._recording:
            if exc is not None and isinstance(exc, Exception):
                self.record_exception(exc)
                self.set_status("error", f"{exc_type.__name__}: {exc}")
            self.end()
        token = self._token
        if token is not None:
            self._token = None
            try:
                _current.reset(token)
            except ValueError:  # exited in another context than it was entered in
                if _current.get() is self:
                    _current.set(None if token.old_value is _MISSING else token.old_value)

    async def __aenter__(self) -> ActiveSpan:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call of `fn` (def or async def) runs in a fresh span like this one.

        A generator function's span covers creating the generator only, not iterating it.
        """
        span = functools.partial(
            self._tracer.span, self.name, attributes=self._attributes, kind=self.kind, links=self._links,
            parent=self._parent,
        )  # fmt: skip
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                with span():
                    return await fn(*args, **kwargs)

            return traced_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with span():
                return fn(*args, **kwargs)

        return traced  # type: ignore[return-value]

    # -- identity -----------------------------------------------------------------------------------

    @property
    def trace_id(self) -> str:
        """The trace id as 32 lowercase hex digits."""
        return f"{self._trace_id:032x}"

    @property
    def span_id(self) -> str:
        """The span id as 16 lowercase hex digits."""
        return f"{self._span_id:016x}"

    @property
    def parent_span_id(self) -> str | None:
        """The parent's span id, or None for a root span."""
        return f"{self._parent_id:016x}" if self._parent_id else None

    @property
    def sampled(self) -> bool:
        """True when the span is exported (the W3C sampled flag)."""
        return self._sampled

    @property
    def tracestate(self) -> str:
        """The W3C tracestate carried along the trace."""
        return self._tracestate

    @property
    def context(self) -> SpanContext:
        """The span's ids, sampled flag and tracestate, for propagation or an explicit `parent=`."""
        return SpanContext(self.trace_id, self.span_id, self._sampled, False, self._tracestate)

    @property
    def is_recording(self) -> bool:
        """True between start and end for a span the sampler did not drop."""
        return self._recording

    # -- recording ----------------------------------------------------------------------------------

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (values other than str/bool/int/float or lists of one of those become str)."""
        if not self._recording:
            return
        attributes = self._attributes
        if type(key) is not str:
            key = str(key)
        if key in attributes or len(attributes) < self._tracer.max_attributes:
            attributes[key] = value if type(value) in _SCALARS else _clean_value(value)
        else:
            self._dropped(0)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set several attributes."""
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, time_ns: int | None = None
    ) -> None:
        """Add a timestamped event (now unless `time_ns` is given)."""
        if not self._recording:
            return
        tracer = self._tracer
        events = self._events
        if events is None:
            events = self._events = []
        if len(events) >= tracer.max_events:
            self._dropped(1)
            return
        events.append((
            name,
            tracer._clock() if time_ns is None else time_ns,
            _clean_attributes(attributes, tracer.max_attributes) if attributes else None,
        ))

    def set_status(self, status: SpanStatus, message: str = "") -> None:
        """Set "ok" or "error" (with a message); "unset" is ignored, and nothing overrides "ok"."""
        if status not in _STATUSES:
            raise InstrumentError(f"span status must be one of 'unset', 'ok', 'error'; got {status!r}")
        if not self._recording or status == "unset" or self._status == "ok":
            return
        self._status = status
        self._status_message = message if status == "error" else ""

    def record_exception(self, exc: BaseException, attributes: Mapping[str, Any] | None = None) -> None:
        """Add an "exception" event with the exception's type, message and traceback."""
        if self._recording:
            details = exception_fields(exc)
            self.add_event("exception", {**details, **attributes} if attributes else details)

    def add_link(self, link: SpanLink) -> None:
        """Link this span to another span (for example the one that enqueued this work)."""
        if not self._recording:
            return
        links = self._links
        if links is None:
            links = self._links = []
        if len(links) < self._tracer.max_links:
            links.append(link)
        else:
            self._dropped(2)

    def _dropped(self, which: int, count: int = 1) -> None:
        if self._drops is None:
            self._drops = [0, 0, 0]
        self._drops[which] += count

    @property
    def dropped(self) -> tuple[int, int, int]:
        """How many (attributes, events, links) were not kept because the span was at its limit."""
        drops = getattr(self, "_drops", None)
        return (drops[0], drops[1], drops[2]) if drops else (0, 0, 0)

    def update_name(self, name: str) -> None:
        """Rename the span (for example once the route of a request is known)."""
        if self._recording:
            self.name = name

    def __repr__(self) -> str:
        if not self._span_id:
            return f"<ActiveSpan {self.name!r} not started>"
        state = "recording" if self._recording else "not recording"
        return f"<ActiveSpan {self.name!r} {state} trace={self.trace_id} span={self.span_id}>"


@contextmanager
def use_span(span: ActiveSpan) -> Iterator[ActiveSpan]:
    """Make a started span current inside the block without ending it (for work that resumes later)."""
    token = _current.set(span)
    try:
        yield span
    finally:
        _current.reset(token)


class Tracer:
    """Makes spans for one service and hands finished ones to the flusher through a BoundedBuffer."""

    def __init__(
        self,
        *,
        service: str,
        buffer: BoundedBuffer[Any],
        sampler: Sampler | None = None,
        clock: Callable[[], int] = time.time_ns,
        max_attributes: int = 128,
        max_events: int = 128,
        max_links: int = 128,
    ) -> None:
        limits = {"max_attributes": max_attributes, "max_events": max_events, "max_links": max_links}
        for what, limit in limits.items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ConfigError(f"tracer {what} must be a whole number >= 0, got {limit!r}")
        self.service = service
        self.sampler: Sampler = sampler if sampler is not None else ParentBased(AlwaysOn())
        self.max_attributes = max_attributes
        self.max_events = max_events
        self.max_links = max_links
        self.dropped_attributes = 0
        self.dropped_events = 0
        self.dropped_links = 0
        self._buffer = buffer
        self._clock = clock
        self._live: set[ActiveSpan] = set()

    def span(
        self,
        name: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        kind: SpanKind = "internal",
        links: list[SpanLink] | None = None,
        parent: SpanContext | None = None,
    ) -> ActiveSpan:
        """A span to use as `with`, `async with` or a decorator; it starts when entered (or called)."""
        if type(name) is not str or kind not in _KINDS:
            self._reject(name, kind)
        span = _new(ActiveSpan)  # skipping __init__ saves a frame on the hot path
        span._tracer = self
        span.name = name
        span.kind = kind
        span._attributes = attributes
        span._links = links
        span._parent = parent
        span._span_id = 0
        span._recording = False
        return span

    def start_span(
        self,
        name: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        kind: SpanKind = "internal",
        links: list[SpanLink] | None = None,
        parent: SpanContext | None = None,
    ) -> ActiveSpan:
        """A span started now but not made current; the caller must `end()` it (see also `use_span`)."""
        span = self.span(name, attributes=attributes, kind=kind, links=links, parent=parent).__enter__()
        _current.reset(span._token)
        span._token = None
        return span

    def current_span(self) -> ActiveSpan | None:
        """The span the calling code runs in, if any."""
        return _current.get()

    def drain(self, now_ns: int, live_after_s: float = 1.0) -> list[models.Span]:
        """Finished spans to store, plus a snapshot (end_ns=None) of each span running over live_after_s.

        Storage replaces a stored span with a later write of the same span (same ids and start time), so a
        span's final version later replaces its snapshot.
        """
        spans = [self._to_model(span, span._end_ns) for span in self._buffer.drain()]
        cutoff = now_ns - int(live_after_s * 1e9)
        for span in self._live.copy():
            if not span._snapshotted and span._start_ns <= cutoff and span._end_ns is None:
                span._snapshotted = True
                spans.append(self._to_model(span, None))
        return spans

    def _to_model(self, span: ActiveSpan, end_ns: int | None) -> models.Span:
        if end_ns is not None and span._drops:
            self.dropped_attributes += span._drops[0]
            self.dropped_events += span._drops[1]
            self.dropped_links += span._drops[2]
        events = span._events
        return models.Span(
            trace_id=f"{span._trace_id:032x}",
            span_id=f"{span._span_id:016x}",
            parent_span_id=f"{span._parent_id:016x}" if span._parent_id else None,
            name=span.name,
            service=self.service,
            kind=span.kind,
            start_ns=span._start_ns,
            end_ns=end_ns,
            status=span._status,
            status_message=span._status_message,
            attributes=span._attributes if end_ns is not None else dict(span._attributes),
            events=[
                models.SpanEvent(name=name, time_ns=time_ns, attributes=attributes or {})
                for name, time_ns, attributes in events
            ] if events else [],
            links=list(span._links) if span._links else [],
        )  # fmt: skip

    @staticmethod
    def _reject(name: Any, kind: Any) -> None:
        if type(name) is not str:
            raise InstrumentError(f"span name must be a str, got {type(name).__name__} {name!r}")
        raise InstrumentError(f"span kind must be one of {', '.join(sorted(_KINDS))}; got {kind!r}")
