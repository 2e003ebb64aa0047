"""The files the dashboard ships (page shell, scripts, styles, vendored libraries), read once from the package.

Serving from a fixed table means only files that ship in the wheel can be asked for: a request path is a
key, never a file system path, so nothing outside `static/` can be reached.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

import msgspec

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


class Asset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One shipped file: its bytes and the media type it is served with."""

    body: bytes
    media_type: str


def _walk(folder: Traversable, prefix: str) -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.update(_walk(entry, f"{name}/"))
            continue
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        media_type = TYPES.get(suffix, "text/plain; charset=utf-8" if "LICENSE" in entry.name else "")
        if media_type:
            found[name] = Asset(body=entry.read_bytes(), media_type=media_type)
    return found


def load() -> dict[str, Asset]:
    """Every servable file under the package's `static/` folder, by its path relative to that folder."""
    return _walk(files("tocsin_dashboard") / "static", "")
