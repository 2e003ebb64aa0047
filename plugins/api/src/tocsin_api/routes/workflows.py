"""`/api/v1` workflows endpoints."""

from __future__ import annotations

ROUTES: list[object] = []
