"""Head samplers: decide when a span starts whether it is recorded and exported (OpenTelemetry semantics).

A sampler sees the parent (None for a root span), the new span's 128-bit trace id as an int, its name,
kind, starting attributes and links, and returns a `SamplingResult`. The common results are shared
constants, so a decision allocates nothing. `TraceIdRatio` decides on the lower 64 bits of the trace id
only, so every service sampling at the same rate keeps the same traces.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from tocsin.errors import ConfigError
from tocsin.models import SpanKind, SpanLink

_LOWER_64 = 2**64 - 1


class Decision(enum.Enum):
    """What happens to a new span: dropped, recorded but not exported, or recorded and exported."""

    DROP = "drop"
    RECORD_ONLY = "record_only"
    RECORD_AND_SAMPLE = "record_and_sample"


class SamplingResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A sampler's answer: `attributes` are added to the span; a `tracestate` replaces the parent's."""

    decision: Decision
    attributes: dict[str, Any] | None = None
    tracestate: str | None = None


DROP = SamplingResult(decision=Decision.DROP)
RECORD_ONLY = SamplingResult(decision=Decision.RECORD_ONLY)
RECORD_AND_SAMPLE = SamplingResult(decision=Decision.RECORD_AND_SAMPLE)


class ParentContext(Protocol):
    """What a sampler may read from a parent: an `ActiveSpan` (local) or a `SpanContext` (local or remote)."""

    @property
    def trace_id(self) -> str: ...
    @property
    def span_id(self) -> str: ...
    @property
    def sampled(self) -> bool: ...
    @property
    def remote(self) -> bool: ...
    @property
    def tracestate(self) -> str: ...


class Sampler(Protocol):
    """Decides, for each new span, whether it is dropped, recorded, or recorded and exported."""

    @property
    def description(self) -> str: ...

    def should_sample(
        self,
        parent: ParentContext | None,
        trace_id: int,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
        links: Sequence[SpanLink] | None,
    ) -> SamplingResult:
        """Decide for a span about to start; `trace_id` is the 128-bit id as an int."""
        ...


class AlwaysOn:
    """Records and exports every span."""

    __slots__ = ()
    description = "AlwaysOnSampler"

    def should_sample(self, parent, trace_id, name, kind, attributes, links) -> SamplingResult:
        """Keep the span."""
        return RECORD_AND_SAMPLE


class AlwaysOff:
    """Drops every span (ids are still made and propagated, with the sampled flag off)."""

    __slots__ = ()
    description = "AlwaysOffSampler"

    def should_sample(self, parent, trace_id, name, kind, attributes, links) -> SamplingResult:
        """Drop the span."""
        return DROP


class TraceIdRatio:
    """Samples a fraction `rate` of traces: iff (trace_id & (2**64 - 1)) < round(rate * 2**64)."""

    __slots__ = ("bound", "description", "rate")

    def __init__(self, rate: float) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ConfigError(f"sampling rate must be a number from 0.0 to 1.0, got {rate!r}")
        self.rate = float(rate)
        self.bound = round(self.rate * 2**64)
        self.description = f"TraceIdRatioBased{{{self.rate}}}"

    def should_sample(self, parent, trace_id, name, kind, attributes, links) -> SamplingResult:
        """Keep the span iff the trace id's lower 64 bits fall under the bound."""
        return RECORD_AND_SAMPLE if trace_id & _LOWER_64 < self.bound else DROP


class ParentBased:
    """Follows the parent's sampled flag (through four delegates); a span without a parent asks `root`."""

    __slots__ = (
        "description",
        "local_parent_not_sampled",
        "local_parent_sampled",
        "remote_parent_not_sampled",
        "remote_parent_sampled",
        "root",
    )

    def __init__(
        self,
        root: Sampler,
        *,
        remote_parent_sampled: Sampler | None = None,
        remote_parent_not_sampled: Sampler | None = None,
        local_parent_sampled: Sampler | None = None,
        local_parent_not_sampled: Sampler | None = None,
    ) -> None:
        self.root = root
        self.remote_parent_sampled = remote_parent_sampled or AlwaysOn()
        self.remote_parent_not_sampled = remote_parent_not_sampled or AlwaysOff()
        self.local_parent_sampled = local_parent_sampled or AlwaysOn()
        self.local_parent_not_sampled = local_parent_not_sampled or AlwaysOff()
        self.description = (
            f"ParentBased{{root:{root.description},"
            f"remoteParentSampled:{self.remote_parent_sampled.description},"
            f"remoteParentNotSampled:{self.remote_parent_not_sampled.description},"
            f"localParentSampled:{self.local_parent_sampled.description},"
            f"localParentNotSampled:{self.local_parent_not_sampled.description}}}"
        )

    def should_sample(self, parent, trace_id, name, kind, attributes, links) -> SamplingResult:
        """Ask the delegate for this kind of parent (or `root` when there is none)."""
        if parent is None:
            delegate = self.root
        elif parent.remote:
            delegate = self.remote_parent_sampled if parent.sampled else self.remote_parent_not_sampled
        else:
            delegate = self.local_parent_sampled if parent.sampled else self.local_parent_not_sampled
        return delegate.should_sample(parent, trace_id, name, kind, attributes, links)


_NAMES = {
    "always_on": lambda rate: AlwaysOn(),
    "always_off": lambda rate: AlwaysOff(),
    "ratio": TraceIdRatio,
    "parent_based": lambda rate: ParentBased(TraceIdRatio(rate)),
    # The OTEL_TRACES_SAMPLER spellings, for people bringing an OpenTelemetry config along.
    "traceidratio": TraceIdRatio,
    "parentbased_always_on": lambda rate: ParentBased(AlwaysOn()),
    "parentbased_always_off": lambda rate: ParentBased(AlwaysOff()),
    "parentbased_traceidratio": lambda rate: ParentBased(TraceIdRatio(rate)),
}


def make_sampler(name: str, rate: float = 1.0) -> Sampler:
    """Build the sampler a config names; `parent_based` follows the parent and samples roots at `rate`."""
    factory = _NAMES.get(name)
    if factory is None:
        raise ConfigError(f"unknown sampler {name!r}; expected one of: {', '.join(_NAMES)}")
    return factory(rate)
