"""Puts this directory on sys.path, so the tests can import `pagerduty_fake` (the fake Events API v2)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
