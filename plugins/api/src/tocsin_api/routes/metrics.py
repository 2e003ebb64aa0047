"""`/api/v1` metrics endpoints."""

from __future__ import annotations

ROUTES: list[object] = []
