"""Puts this directory on sys.path, so the tests can import `webhook_receiver` (the careful receiver)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
