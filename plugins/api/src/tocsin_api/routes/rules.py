"""`/api/v1` rules endpoints."""

from __future__ import annotations

ROUTES: list[object] = []
