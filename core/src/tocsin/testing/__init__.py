"""Public helpers for testing tocsin and its plugins.

- `make_monitor(*plugins, config=...)`: a Monitor on in-memory storage, entry points off unless asked.
- `registered(pm, plugin)`: register a plugin object for the duration of a block.
- `CapturingChannel`: a notification channel that records what it was asked to send.
- `tocsin.testing.contracts.StorageBackendContract`: the test suite every storage backend must pass.
- `tocsin.testing.channel_contract.ChannelContract`: the test suite every notification channel plugin subclasses.
- `tocsin.testing.receiver.HttpReceiver`: a scripted HTTP server on loopback for channel tests.
The pytest fixtures in `tocsin.testing.pytest_plugin` load automatically with tocsin installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from tocsin.assembly import load_config
from tocsin.clock import Clock
from tocsin.hookspecs import hookimpl
from tocsin.models import Notification
from tocsin.monitor import Monitor
from tocsin.notify.channel import NotificationChannel
from tocsin.plugins import PluginManager, build_registries, make_plugin_manager


class CapturingChannel(NotificationChannel):
    """Records notifications in `.sent` instead of delivering them (like OTel's InMemorySpanExporter)."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        fail_times: int = 0
        fail_permanently: bool = False

    sent: list[Notification]

    def __init__(self, config: msgspec.Struct | None = None, *, name: str = "captured") -> None:
        super().__init__(config or self.Config(), name=name)
        self.sent = []
        self.attempts = 0

    async def send(self, notification: Notification) -> None:
        from tocsin.errors import DeliveryRefused

        self.attempts += 1
        if self.attempts <= self.config.fail_times:
            raise DeliveryRefused(f"capturing channel {self.name!r} told to fail attempt {self.attempts}",
                                  permanent=self.config.fail_permanently)
        self.sent.append(notification)

    def __repr__(self) -> str:
        return f"<CapturingChannel {self.name!r} with {len(self.sent)} notification(s)>"


class CapturingPlugin:
    """Registers `CapturingChannel` as the channel type "captured"."""

    __name__ = "tocsin.testing.capturing"

    @hookimpl
    def register_notification_channels(self, register):
        register("captured", CapturingChannel)


def make_monitor(
    *plugins: object,
    config: Mapping[str, Any] | None = None,
    entrypoints: bool = False,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> Monitor:
    """An unstarted Monitor on in-memory storage with built-ins, the capturing channel and `plugins`."""
    pm = make_plugin_manager(CapturingPlugin(), *plugins, entrypoints=entrypoints)
    registries = build_registries(pm)
    data = dict(config or {})
    data.setdefault("storage", {"backend": "memory"})
    config = load_config(data, registries=registries, environ=environ or {})
    return Monitor(config, pm=pm, registries=registries, clock=clock)


@contextlib.contextmanager
def registered(pm: PluginManager, plugin: object, name: str | None = None) -> Iterator[object]:
    """Register `plugin` on `pm` for the duration of the block, then unregister it."""
    name = name or getattr(plugin, "__name__", None) or f"undo-{type(plugin).__name__}"
    pm.register(plugin, name=name)
    try:
        yield plugin
    finally:
        pm.unregister(name=name)
