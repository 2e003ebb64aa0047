"""`/api/v1` health endpoints."""

from __future__ import annotations

ROUTES: list[object] = []
