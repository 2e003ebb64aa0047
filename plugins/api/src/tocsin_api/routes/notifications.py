"""`/api/v1` notifications endpoints."""

from __future__ import annotations

ROUTES: list[object] = []
