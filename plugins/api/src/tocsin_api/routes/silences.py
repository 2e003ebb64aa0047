"""`/api/v1` silences endpoints."""

from __future__ import annotations

ROUTES: list[object] = []
