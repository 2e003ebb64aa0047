"""Screenshots of every page against `tocsin demo` (its simulated shop), in Chromium. They are written to
docs/dashboard/ only with TOCSIN_UPDATE_SCREENSHOTS=1 (else to a temporary folder), so a normal run checks
that every page draws the demo's data without a console error and leaves the docs alone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

DOCS = Path(__file__).resolve().parents[3] / "docs" / "dashboard"
UPDATE = os.environ.get("TOCSIN_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """`tocsin demo` on a free port; its base URL."""
    story = ["--speed", "20", "--history", "60"] if UPDATE else ["--history", "5"]
    process = subprocess.Popen([sys.executable, "-m", "tocsin", "demo", "--port", "0", "--seed", "7", *story],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line or process.poll() is None, "tocsin demo exited before serving"
            match = re.search(r"dashboard: (http://\S+)/", line)
            url = match.group(1) if match else None
        assert url, "tocsin demo printed no dashboard URL"
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def first(base: str, path: str, **params: str) -> dict:
    items = httpx.get(f"{base}/api/v1{path}", params=params, timeout=10).json()["items"]
    return items[0] if items else {}


def test_screenshots_of_every_page_against_the_demo(demo, new_tab, tmp_path):
    target = DOCS if UPDATE else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 60
    while UPDATE and time.monotonic() < deadline and not (first(demo, "/alerts", state="firing")
                                                         and first(demo, "/workflows/executions", status="failed")):
        time.sleep(1)  # for the docs, wait until the story has a firing alert and a failed run to show
    checkout = first(demo, "/traces", status="error", name="POST /checkout") or first(demo, "/traces")
    trace = checkout.get("trace_id", "")
    failed = first(demo, "/workflows/executions", status="failed").get("id", "")
    alert = (first(demo, "/alerts", state="firing") or first(demo, "/alerts")).get("fingerprint", "")
    shots = {
        "overview": "/",
        "metrics": "/ui/metrics?metric=http_request_seconds&agg=p95&by=route&range=15m",
        "traces": f"/ui/traces?trace={trace}&status=error",
        "logs": "/ui/logs?q=timeout+OR+price&range=15m",
        "alerts": f"/ui/alerts?view=all&alert={alert}",
        "workflows": f"/ui/workflows?execution={failed}",
        "notifications": "/ui/notifications",
    }
    tab = new_tab(demo)
    for name, path in shots.items():
        page = tab.open(path)
        expect(page.locator("h1").first).to_be_visible()
        page.wait_for_timeout(600)
        page.screenshot(path=str(target / f"{name}.png"))
        assert (target / f"{name}.png").stat().st_size > 10_000
    assert tab.errors == []
