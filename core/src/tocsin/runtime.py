"""What a service needs from the monitor that runs it, as a narrow interface the services import instead of
the Monitor itself.

The alerting, notify, health and workflow services (and channels and checks) are built by the Monitor and
given the Monitor, but they depend only on this Protocol: config, clock, storage, the event emitter, the
signals they record into, the plugin registries, component health (for alert inhibition), and `flush`.
So no wing imports `tocsin.monitor`, and a test or another host can run a service on anything that has
these attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tocsin.clock import Clock
    from tocsin.config.schema import Config
    from tocsin.models import Event
    from tocsin.plugins import PluginManager, Registries
    from tocsin.signals.logs import Logger
    from tocsin.signals.metrics import MetricsRegistry
    from tocsin.signals.tracing import Tracer
    from tocsin.storage.protocol import StorageBackend


class ComponentHealth(Protocol):
    """What alerting asks of the health service: which unhealthy dependency inhibits a component's alerts."""

    def inhibited(self, name: str) -> str | None:
        """The unhealthy dependency that inhibits `name`'s own alerts (the root cause), or None."""


class Runtime(Protocol):
    """The parts of a running monitor that its services use; `tocsin.Monitor` is the implementation."""

    config: Config
    clock: Clock
    pm: PluginManager
    registries: Registries
    metrics: MetricsRegistry
    tracer: Tracer
    log: Logger
    storage: StorageBackend | None
    health: ComponentHealth

    def emit(self, event: Event) -> None:
        """Publish an event on the bus and to `on_event` hooks; thread-safe."""

    async def flush(self) -> None:
        """Write everything buffered so far (logs, spans, metrics) to storage."""
