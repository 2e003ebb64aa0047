"""Puts this directory on sys.path, so the tests can import `slack_fake` (the fake Slack webhook)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
