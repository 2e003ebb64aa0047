"""Hook specifications for tocsin plugins; each is documented in docs/plugin-hooks.md.

Registration hooks are called once while a Monitor is assembled: they are synchronous, cheap and do no I/O,
and they call `register(name, thing)` zero or more times. Lifecycle and observer hooks may return a value,
a callable or an awaitable; the core awaits it. Hot paths (sending, evaluating, recording) never go
through pluggy: registries are resolved to dicts at startup.
"""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("tocsin")
hookimpl = HookimplMarker("tocsin")


# -- Bootstrapping ---------------------------------------------------------------------------------


@hookspec(historic=True)
def add_hookspecs(pm):
    """Add hook specifications a plugin owns (tocsin-api adds register_routes this way)."""


# -- Registries: called once at assembly; call register(name, thing) 0..n times ------------------------


@hookspec
def register_storage_backends(register):
    """register(name, cls) for each storage backend class; the class carries a `Config` Struct."""


@hookspec
def register_alert_operators(register):
    """register(name, fn) for each alert operator; fn(value, threshold) -> bool."""


@hookspec
def register_notification_channels(register):
    """register(name, cls) for each notification channel class; the class carries a `Config` Struct."""


@hookspec
def register_health_checks(register):
    """register(name, cls) for each health check class; the class carries a `Config` Struct."""


@hookspec
def register_config(register):
    """register(section, struct) so `[plugins.<section>]` in the config is validated against struct."""


@hookspec
def register_commands(cli):
    """Add click commands to the `tocsin` command group."""


# -- Lifecycle -------------------------------------------------------------------------------------


@hookspec
def startup(monitor):
    """Called once the monitor has started its storage and services; may return an awaitable."""


@hookspec
def shutdown(monitor):
    """Called before the monitor flushes and closes storage; may return an awaitable."""


# -- Observers -------------------------------------------------------------------------------------


@hookspec
def on_event(monitor, event):
    """Observe an alert, health, workflow or delivery event; may return an awaitable."""


# -- Decisions: the first non-None result wins -------------------------------------------------------


@hookspec(firstresult=True)
def render_notification(monitor, notification, channel):
    """Return a Notification rendered for this channel, or None to leave it to the next plugin."""
