"""`/api/v1` alerts endpoints."""

from __future__ import annotations

ROUTES: list[object] = []
