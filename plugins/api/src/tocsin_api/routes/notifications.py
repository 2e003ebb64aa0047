"""`/api/v1` notifications endpoints: the delivery log, the configured channels, test sends and previews.

Deliveries are the outbox rows the alerting engine stores with its transitions; each try at sending one is an
attempt (errors scrubbed of secrets before they are stored). Channels are listed by name, type and routing
keys only: a channel's own options (URLs, tokens) never leave the server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec
from litestar import get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from tocsin.ext import (
    Alert,
    Delivery,
    DeliveryAttempt,
    DeliveryQuery,
    DeliveryState,
    Notification,
    Page,
    Severity,
    TestResult,
    secrets_in,
)
from tocsin_api import params
from tocsin_api.deps import MonitorDep

DELIVERY_STATES: tuple[str, ...] = get_args(DeliveryState)


class DeliveryDetail(msgspec.Struct, kw_only=True):
    """One delivery and every attempt at sending it, oldest first."""

    delivery: Delivery
    attempts: list[DeliveryAttempt]


class Channel(msgspec.Struct, kw_only=True):
    """A configured channel: its name, type and routing keys (never its options, which may hold secrets)."""

    name: str
    type: str
    min_severity: Severity
    match: dict[str, str]
    send_resolved: bool
    fallback: str | None


class PreviewRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which alert to preview (a stored alert's fingerprint, or an alert given whole) and for which event."""

    fingerprint: str | None = None
    alert: Alert | None = None
    kind: Literal["firing", "resolved", "acknowledged"] = "firing"


class Preview(msgspec.Struct, kw_only=True):
    """What a channel would send for an alert event, and whether routing would send it at all (and why not)."""

    channel: str
    would_send: bool
    reason: str
    notification: Notification
    payload: dict[str, Any]


@get("/notifications", summary="The delivery log, newest first", tags=["notifications"])
async def list_deliveries(
    monitor: MonitorDep,
    channel: FromQuery[str | None] = None,
    wanted: Annotated[str | None, QueryParameter(name="state")] = None,
    fingerprint: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
) -> Page[Delivery]:
    """Outbox deliveries by channel, state (pending, sending, sent, failed, dropped) and alert, a page at a time."""
    if wanted is not None and wanted not in DELIVERY_STATES:
        raise params.bad("state", f"{wanted!r} is not one of {', '.join(DELIVERY_STATES)}")
    query = DeliveryQuery(channel=channel or None, state=wanted, fingerprint=fingerprint or None,  # type: ignore[arg-type]
                          cursor=cursor or None, limit=params.limit(limit))
    return await monitor.notify.deliveries(query)


@get("/notifications/{delivery_id:str}", summary="One delivery with its attempts", tags=["notifications"])
async def get_delivery(monitor: MonitorDep, delivery_id: FromPath[str]) -> DeliveryDetail:
    """A delivery and its attempts (outcome, latency, status, scrubbed error); 404 when there is none."""
    delivery = await monitor.notify.delivery(delivery_id)
    if delivery is None:
        raise NotFoundException(f"no delivery has id {delivery_id!r}")
    return DeliveryDetail(delivery=delivery, attempts=await monitor.notify.attempts(delivery_id))


@get("/channels", summary="The configured notification channels", tags=["notifications"])
async def list_channels(monitor: MonitorDep) -> list[Channel]:
    """Each channel's name, type, minimum severity, label match, send_resolved and fallback; no options."""
    return [Channel(name=c.name, type=c.type, min_severity=c.min_severity, match=dict(c.match),
                    send_resolved=c.send_resolved, fallback=c.fallback) for c in monitor.config.channels]


@post("/channels/{name:str}/test", status_code=200, opt={"scope": "write"}, summary="Send a test notification",
      tags=["notifications"])
async def test_channel(monitor: MonitorDep, name: FromPath[str]) -> TestResult:
    """Send a test message now through the channel's egress guard and timeout (not the outbox); 404 if unknown."""
    _known(monitor, name)
    return await monitor.notify.test(name)


@post("/channels/{name:str}/preview", status_code=200, summary="What a channel would send for an alert",
      tags=["notifications"])
async def preview_channel(monitor: MonitorDep, name: FromPath[str], data: JSONBody[PreviewRequest]) -> Preview:
    """The notification and the channel's payload for an alert event, rendered as a real send; nothing is sent."""
    _known(monitor, name)
    if (data.fingerprint is None) == (data.alert is None):
        raise params.bad_body("fingerprint", "give either the fingerprint of a stored alert or an alert")
    alert = data.alert
    if data.fingerprint is not None:
        storage = monitor.storage
        assert storage is not None
        alert = await storage.get_alert(data.fingerprint)
        if alert is None:
            raise params.bad_body("fingerprint", f"no alert has fingerprint {data.fingerprint!r}")
    assert alert is not None
    preview = monitor.notify.preview(alert, name, data.kind)
    secrets = secrets_in(monitor.notify.channels[name].config)  # channels show none; this makes sure
    notification = msgspec.structs.replace(preview.notification, title=_redact(preview.notification.title, secrets),
                                           body=_redact(preview.notification.body, secrets))
    return Preview(channel=preview.channel, would_send=preview.would_send, reason=preview.reason,
                   notification=notification, payload=_redact(preview.payload, secrets))


def _redact(value: Any, secrets: list[str]) -> Any:
    """`value` with every secret of the channel's config replaced by `<secret>`, in every string it holds."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            value = value.replace(secret, "<secret>")
        return value
    if isinstance(value, dict):
        return {_redact(key, secrets): _redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, secrets) for item in value]
    return value


def _known(monitor: MonitorDep, name: str) -> None:
    if name not in monitor.notify.channels:
        raise NotFoundException(f"no channel named {name!r}; configured: "
                                f"{', '.join(sorted(monitor.notify.channels)) or 'none'}")


ROUTES = [list_deliveries, get_delivery, list_channels, test_channel, preview_channel]
