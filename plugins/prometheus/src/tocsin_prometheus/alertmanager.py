"""The Alertmanager API v2 body (`POST /api/v2/alerts`) as tocsin external alerts.

The body is a JSON array of postableAlert: `labels` (required, strings), `annotations`, `startsAt`, `endsAt`
(RFC 3339; Go's zero time `0001-01-01T00:00:00Z` means unset) and `generatorURL`. Unknown keys are ignored,
as Alertmanager does. What Alertmanager refuses, tocsin refuses too, naming the field: a body that is not
an array, missing or empty labels, an invalid label name, `startsAt` after `endsAt`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec

from tocsin.ext import ExternalAlert

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_GO_ZERO_YEAR = 1


class PostableAlert(msgspec.Struct, rename="camel"):
    """One alert of the body; extra keys are tolerated (the API evolves, senders add fields)."""

    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str = msgspec.field(default="", name="generatorURL")


class BodyError(ValueError):
    """A body Alertmanager would refuse: `field` (a JSON path such as `[0].labels`) and `reason`."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_DECODER = msgspec.json.Decoder(list[PostableAlert])
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _ns(moment: datetime | None) -> int | None:
    """Nanoseconds since the epoch, None for no time or Go's zero time; a time without offset is UTC."""
    if moment is None or moment.year <= _GO_ZERO_YEAR:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1e6) * 1000


def parse_alerts(body: bytes) -> list[ExternalAlert]:
    """The alerts of a v2 body, or BodyError naming the first field that is wrong."""
    try:
        postable = _DECODER.decode(body)
    except msgspec.ValidationError as error:
        text = str(error)
        where = _AT.search(text)
        field = where.group("path") if where else "body"
        raise BodyError(field or "body", _AT.sub("", text)) from None
    except msgspec.DecodeError as error:
        raise BodyError("body", f"not JSON: {error}") from None
    alerts = []
    for i, alert in enumerate(postable):
        if not alert.labels:
            raise BodyError(f"[{i}].labels", "at least one label pair is required")
        for name in alert.labels:
            if _LABEL_NAME.fullmatch(name) is None:
                raise BodyError(f"[{i}].labels", f"invalid label name {name!r}: must match [a-zA-Z_][a-zA-Z0-9_]*")
        starts, ends = _ns(alert.starts_at), _ns(alert.ends_at)
        if starts is not None and ends is not None and starts > ends:
            raise BodyError(f"[{i}].startsAt", "start time must be before end time")
        alerts.append(ExternalAlert(labels=alert.labels, annotations=alert.annotations, starts_ns=starts,
                                    ends_ns=ends, generator_url=alert.generator_url))
    return alerts
