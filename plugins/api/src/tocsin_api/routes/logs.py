"""`/api/v1` logs endpoints."""

from __future__ import annotations

ROUTES: list[object] = []
