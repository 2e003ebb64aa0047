"""`tocsin demo` as a user runs it: a real process serving on a loopback port, read over HTTP, stopped by a signal.

The story runs at `--speed 6` so that within a few seconds an alert fires and is notified, a nightly run
fails and error traces and logs exist; the test then stops the process the way a user does.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tocsin_sqlite

from tocsin import Monitor
from tocsin.ext import MetricQuery, SpanQuery

READY_WITHIN_S = 30.0
"""Bound on waiting for the banner (startup is about 2 s; the bound is for a loaded CI machine)."""
STORY_WITHIN_S = 25.0
STOP_WITHIN_S = 15.0


class Demo:
    """A running `tocsin demo` process, with its output read on a thread."""

    def __init__(self, *args: str) -> None:
        env = {key: value for key, value in os.environ.items() if key not in ("TOCSIN_CONFIG", "TOCSIN_LOAD_PLUGINS")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tocsin", "demo", "--port", "0", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.api = self._wait_for_api()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def _wait_for_api(self) -> str:
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.out.append(line)
            found = re.search(r"API:\s+(http://\S+/api/v1)", line)
            if found:
                return found.group(1)
        self.process.kill()
        _, err = self.process.communicate(timeout=10)
        raise AssertionError(f"no API URL printed; stdout {''.join(self.out)!r}, stderr {err!r}")

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.api + path, params=params, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self, signum: int) -> tuple[int, str, str]:
        """Send `signum`; the exit status and the rest of stdout and stderr."""
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        assert self.process.stderr is not None
        return self.process.returncode, "".join(self.out + rest), self.process.stderr.read()


@pytest.fixture
def run_demo() -> Iterator[Callable[..., Demo]]:
    demos: list[Demo] = []

    def start(*args: str) -> Demo:
        demos.append(Demo(*args))
        return demos[-1]

    yield start
    for demo in demos:
        if demo.process.poll() is None:
            demo.process.kill()
            demo.process.wait(10)


def eventually(what: str, check: Callable[[], Any], within: float = STORY_WITHIN_S) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` once `within` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"the demo never showed {what} within {within:.0f}s")
        time.sleep(0.5)


def test_demo_tells_the_whole_story_and_stops_cleanly_on_ctrl_c(run_demo):
    started_ns = time.time_ns()
    demo = run_demo("--speed", "6", "--seed", "7")
    banner = "".join(demo.out)
    db_path = Path(re.search(r"stored (\S+\.db)", banner).group(1))
    assert db_path.exists()

    # the dashboard is served when tocsin-dashboard is installed, else only the API is announced
    plugin = importlib.import_module("tocsin_dashboard") if importlib.util.find_spec("tocsin_dashboard") else None
    if hasattr(plugin, "register_routes"):
        page = httpx.get(re.search(r"dashboard: (\S+)", banner).group(1), timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    else:
        assert "dashboard:" not in banner

    # history was seeded before the URL was printed: the first look already has 15 minutes of charts
    series = demo.get("/metrics/http_request_seconds/query", agg="p99", start="20m", step="1m", by="route")["series"]
    assert {s["labels"]["route"] for s in series} >= {"/", "/checkout", "/products"}
    assert min(point[0] for s in series for point in s["points"]) < started_ns - 10 * 60 * 10**9

    firing = eventually("a firing alert", lambda: demo.get("/alerts", state="firing")["items"])
    assert {alert["rule"] for alert in firing} <= {
        "checkout-latency-high", "server-errors", "payment-timeouts", "payments-api-down", "fraud-check-down",
        "nightly-etl-failed"}
    sent = eventually("a notification sent", lambda: demo.get("/notifications", channel="ops", state="sent")["items"])
    assert sent[0]["payload"]["alert"]["rule"]
    [failed, *_] = eventually("a failed nightly run", lambda: demo.get(
        "/workflows/executions", name="nightly-etl", status="failed")["items"])
    assert "bad row" in failed["error"]
    eventually("the nightly-etl-failed alert firing", lambda: demo.get(
        "/alerts", rule="nightly-etl-failed", state="firing")["items"])

    errors = demo.get("/traces", service="web", status="error", root_only="true", start="2m", limit=20)["items"]
    assert errors, "no failed request traces"
    trace = demo.get(f"/traces/{errors[0]['trace_id']}")
    assert len(trace["spans"]) >= 2 and trace["errors"] >= 1
    assert len(trace["services"]) >= 2
    logs = demo.get("/logs", q="timeout OR failed OR declined", start="20m", limit=50)["items"]
    traced = [hit["record"] for hit in logs if hit["record"]["trace_id"]]
    assert traced, "no log record carries a trace id"
    assert demo.get(f"/traces/{traced[0]['trace_id']}")

    code, out, err = demo.stop(signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err, err
    assert "stopped" in out
    assert re.search(r"alert \S+ firing .*notified through the log channel", out), out
    assert "nightly-etl run failed: step 'transform.validate' failed" in out, out
    assert not db_path.exists()
    assert not db_path.parent.exists()


@pytest.mark.parametrize("keep", ["--db", "--keep"])
def test_demo_keeps_its_db_when_asked_and_exits_zero_on_sigterm(run_demo, tmp_path, keep):
    args = ["--db", str(tmp_path / "shop.db")] if keep == "--db" else ["--keep"]
    demo = run_demo(*args, "--history", "2", "--seed", "3")
    served_ns = time.time_ns()
    db = Path(re.search(r"stored (\S+\.db) \(kept on exit\)", "".join(demo.out)).group(1))
    seeded = int(re.search(r"(\d+) requests of history", "".join(demo.out)).group(1))
    assert {"web", "inventory", "payments"} <= set(demo.get("/traces/services", start="5m")["items"])
    eventually("live requests", lambda: demo.get("/traces", service="web", root_only="true", start=served_ns)["items"])
    code, _, err = demo.stop(signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err, err
    # every live request is traced at once, while its counter waits in memory for the metrics flush: the
    # counters held at SIGTERM were written when the monitor closed, so at least as many requests are counted
    with Monitor.from_config({"storage": {"backend": "sqlite", "path": str(db)}}, plugins=[tocsin_sqlite],
                             entrypoints=False) as monitor:
        storage = monitor.storage
        live_traces = monitor.run_sync(storage.search_spans(SpanQuery(
            service="web", root_only=True, start_ns=served_ns, limit=10_000))).items
        [counted] = monitor.run_sync(storage.query_metrics(MetricQuery(
            name="http_requests_total", aggregate="sum", start_ns=0, end_ns=time.time_ns() + 10**10, by=[])))
    assert live_traces
    assert counted.points[0][1] - seeded >= len(live_traces)
    if keep == "--keep":
        shutil.rmtree(db.parent)
