"""`[plugins.prometheus]`: who may scrape `/metrics`, how often storage size is read, the alert source name."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from tocsin.ext import Duration


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The plugin's config section (every key optional)."""

    metrics_scope: Literal["read", "write", "admin", "public"] = "read"
    """The API-key scope `GET /metrics` needs; `public` serves it without a key."""
    storage_stats_every: Duration = Duration(60)
    """Read the store's size and row counts for `/metrics` at most this often (counting rows can be slow)."""
    alert_source: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")] = "prometheus"
    """Alerts posted to `/api/v2/alerts` are kept under the rule `<alert_source>:<alertname>`."""


def settings_of(plugins: dict[str, object]) -> Settings:
    """The validated section, or the defaults when the config has none."""
    found = plugins.get("prometheus")
    return found if isinstance(found, Settings) else Settings()
