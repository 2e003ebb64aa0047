"""Where a backend keeps its data, in the words of the startup line and `tocsin doctor`."""

from __future__ import annotations

import os


def storage_location(backend: str, options: object) -> str:
    """Where a backend keeps its data, for people: `sqlite at /abs/tocsin.db`, else its name (never a secret)."""
    if backend == "memory":
        return "memory — nothing is kept after the process ends"
    path = getattr(options, "path", None)
    if not isinstance(path, str) or path in ("", ":memory:") or path.startswith("file:"):
        return backend
    return f"{backend} at {os.path.abspath(path)}"
