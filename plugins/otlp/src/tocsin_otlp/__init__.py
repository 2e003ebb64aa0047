"""tocsin OTLP/HTTP receiver: OpenTelemetry traces, logs and metrics in, protobuf or JSON.

With tocsin-api installed, `tocsin serve` answers `POST /v1/traces`, `/v1/logs` and `/v1/metrics`, so an
OpenTelemetry SDK or Collector exports straight to tocsin. Without a server, `await tocsin_otlp.ingest(monitor,
"traces", body, content_type="application/x-protobuf")` stores one export request body in process. The
mapping to tocsin's spans, logs and metric rollups is in docs/interop.md.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from tocsin import hookimpl
from tocsin_otlp.errors import ExportRefused
from tocsin_otlp.settings import Settings

if TYPE_CHECKING:
    from tocsin import Monitor
    from tocsin_otlp.receiver import Export, Receiver

__all__ = ["Export", "ExportRefused", "Receiver", "Settings", "ingest", "receiver_for"]

_receivers: weakref.WeakKeyDictionary[Monitor, Receiver] = weakref.WeakKeyDictionary()


def __getattr__(name: str) -> Any:
    """`Export` and `Receiver`, imported on first use so loading the plugin does not import protobuf."""
    if name in ("Export", "Receiver"):
        from tocsin_otlp import receiver

        return getattr(receiver, name)
    raise AttributeError(f"module 'tocsin_otlp' has no attribute {name!r}")


def receiver_for(monitor: Monitor) -> Receiver:
    """The monitor's one receiver (made on first use with `[plugins.otlp]`), so cumulative metrics are tracked
    once whether they come over HTTP or in process."""
    from tocsin_otlp.receiver import Receiver

    receiver = _receivers.get(monitor)
    if receiver is None:
        settings = monitor.config.plugins.get("otlp")
        receiver = _receivers[monitor] = Receiver(monitor, settings if isinstance(settings, Settings) else None)
    return receiver


async def ingest(monitor: Monitor, signal: str, body: bytes, *, content_type: str = "application/x-protobuf",
                 content_encoding: str | None = None) -> Export:
    """Store one OTLP export request body (`signal` is traces, logs or metrics) in `monitor` now, on its loop.

    Returns what was stored and refused, with the answer body an OTLP client expects; raises ExportRefused
    (with the HTTP status) when the body cannot be taken at all."""
    return await receiver_for(monitor).export(signal, body, content_type=content_type,
                                              content_encoding=content_encoding)


@hookimpl
def register_config(register):
    """`[plugins.otlp]` is validated against Settings."""
    register("otlp", Settings)


@hookimpl(optionalhook=True)
def register_routes(monitor):
    """`POST /v1/traces`, `/v1/logs` and `/v1/metrics` on `tocsin serve` (a tocsin-api hook: optional, so the
    plugin also loads where tocsin-api is not installed)."""
    from tocsin_otlp.routes import handlers  # Litestar is imported only where routes are served

    return handlers(receiver_for(monitor))
