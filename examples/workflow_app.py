"""A nightly ETL job instrumented as a workflow, end to end, then everything tocsin recorded about it.

Run it from the repository root:

    uv run python examples/workflow_app.py

It uses the embedded default storage (SQLite at ./tocsin.db, or in-memory storage without tocsin-sqlite)
and a small config given as a dict: a `log` channel and an alert rule on the workflow. Four nightly runs:
two go well, one fails on a bad row, one is slow enough to be reported stuck; a second workflow is expected
every 200 ms and never runs, so it is reported missed. The failure fires the rule, and the notification
lands in tocsin's own log through the `log` channel.

Run it again and ./tocsin.db holds every run: the example reads back only what this run recorded, while the
alert rule looks at the last hour, so it counts the failures of earlier runs too, and an alert still firing
from an earlier run is not notified again until the channel's repeat_interval (4h) has passed.
"""

from __future__ import annotations

import collections
import time

import tocsin
from tocsin.storage.protocol import LogQuery

ROWS = {
    "2024-05-01": ["a", "b", "c"],
    "2024-05-02": ["d", "e"],
    "2024-05-03": ["f", "", "h"],  # an empty row: transform fails
    "2024-05-04": ["i", "j", "k", "l"],
}


def parse(row: str) -> str:
    if not row:
        raise ValueError("empty row")
    return row.upper()


def nightly_etl(monitor: tocsin.Monitor, day: str, slow: bool = False) -> None:
    """One run: extract, transform (with a nested parse step), load; logs inside carry the execution."""
    workflows = monitor.workflows
    with workflows.execution("nightly-etl", params={"day": day}) as run:
        with run.step("extract"):
            rows = ROWS[day]
            monitor.log.info("extracted", rows=len(rows))
        with run.step("transform"):
            with run.step("transform.parse"):
                parsed = [parse(row) for row in rows]
            monitor.log.info("transformed", rows=len(parsed))
        with run.step("load"):
            time.sleep(0.3 if slow else 0.01)
            if slow:  # the watcher normally runs every [workflows] check_interval; ask it now
                monitor.run_sync(workflows.check_expectations())
            monitor.log.info("loaded", rows=len(parsed))


CONFIG = {
    "channels": [{"name": "ops", "type": "log", "min_severity": "warning", "group_wait": "0s"}],
    "alerting": {"rules": [{
        "name": "nightly-etl-failing",
        "kind": "workflow",
        "workflow": "nightly-etl",
        "measure": "failures",
        "window": "1h",
        "op": "gt",
        "threshold": 0,
        "severity": "error",
        "channels": ["ops"],
        "annotations": {"summary": "nightly-etl failed {{ value | int }} time(s) in the last hour"},
    }]},
}


def main() -> None:
    since = time.time_ns()  # ./tocsin.db keeps earlier runs: read back only what this run recorded
    monitor = tocsin.Monitor.from_config(CONFIG)  # storage: the embedded default
    workflows = monitor.workflows
    workflows.expect("nightly-etl", max_duration=0.2)
    workflows.expect("hourly-sync", schedule="every 200ms", grace=0.1)
    events = monitor.events.subscribe(["workflows"])
    with monitor:  # a background thread owns the event loop; recording works from any thread
        for day in ROWS:
            try:
                nightly_etl(monitor, day, slow=day == "2024-05-04")
            except ValueError as error:
                print(f"{day}: the job raised {error!r} (and tocsin recorded it)")
        time.sleep(0.35)
        monitor.run_sync(workflows.check_expectations())

        ask = monitor.run_sync
        ask(workflows.flush())
        report = ask(monitor.alerting.evaluate())  # the evaluator runs every evaluation_interval; ask it now
        ask(monitor.notify.dispatch_due())
        ask(monitor.notify.settled())
        page = ask(workflows.executions(name="nightly-etl", start_ns=since))
        [failed] = ask(workflows.executions(name="nightly-etl", status="failed", start_ns=since)).items
        failed_execution, failed_steps = ask(workflows.get(failed.id))
        ask(monitor.flush())
        trace = ask(monitor.storage.get_trace(failed.trace_id))
        logs = ask(monitor.storage.search_logs(LogQuery(execution_id=failed.id)))
        stats = ask(workflows.stats("nightly-etl", start_ns=since))
        notices = ask(monitor.storage.search_logs(LogQuery(text="nightly-etl-failing", start_ns=since)))

    print(f"storage backend: {monitor.config.storage.backend}")
    print(f"executions of nightly-etl: {page.total}")
    for execution in reversed(page.items):
        took = (execution.ended_ns - execution.started_ns) / 1e6
        print(f"  {execution.params['day']}: {execution.status} in {took:.1f} ms")
    print(f"failed execution {failed.id}: {failed_execution.error}")
    for step in failed_steps:
        print(f"  step {step.name}: {step.status}{f' ({step.error})' if step.error else ''}")
    last_line = next(s for s in failed_steps if s.traceback).traceback.strip().splitlines()[-1]
    print(f"  traceback ends with: {last_line}")
    print("its trace:")
    depth = {span.span_id: 0 for span in trace if span.parent_span_id is None}
    for span in trace:
        depth[span.span_id] = depth.get(span.parent_span_id, -1) + 1
        print(f"  {'  ' * depth[span.span_id]}{span.name} [{span.status}]")
    print(f"its logs: {logs.total}, by step: {sorted((h.record.step or '-', h.record.message) for h in logs.items)}")
    print(f"stats: {stats.count} runs, success rate {stats.success_rate:.0%}, p50 {stats.p50 * 1000:.1f} ms, "
          f"p95 {stats.p95 * 1000:.1f} ms, running {stats.active}")
    for step in stats.steps:
        print(f"  step {step.name}: {step.count} runs, {step.failed} failed, p50 {step.p50 * 1000:.2f} ms")
    for alert in report.alerts:
        print(f"alert {alert.rule}: {alert.state} (value {alert.value:g}) - {alert.annotations.get('summary')}")
        if alert.fired_at_ns is not None and alert.fired_at_ns < since:
            fired = time.strftime("%H:%M:%S", time.localtime(alert.fired_at_ns / 1e9))
            print(f"  firing since an earlier run ({fired}), which notified it: no new notification before"
                  " the channel's repeat_interval (4h)")
    for hit in notices.items:
        print(f"notification via the log channel: [{hit.record.level}] {hit.record.message.splitlines()[0]}")
    seen = events.drain()
    print("events:", ", ".join(f"{kind} x{n}" for kind, n in sorted(collections.Counter(e.type for e in seen).items())))
    for event in seen:
        if event.type in ("stuck", "missed"):
            print(f"  {event.type}: {event.data['message']}")


if __name__ == "__main__":
    main()
