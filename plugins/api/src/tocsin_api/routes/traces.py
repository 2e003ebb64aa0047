"""`/api/v1` traces endpoints."""

from __future__ import annotations

ROUTES: list[object] = []
