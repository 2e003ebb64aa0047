"""`/api/v1` rules endpoints: the alert rules with how their evaluations go, and backtests over stored history.

Rules come from `monitor.alerting` (the config's `[[alerting.rules]]` plus any added in code). A backtest
replays stored history through the real evaluator and state machine, saving nothing and notifying no one.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody

import tocsin
from tocsin.ext import Alert, AlertTransition, Duration, RuleStatus, Secret, Severity, WouldNotify
from tocsin_api import params
from tocsin_api.deps import MonitorDep


class Rule(msgspec.Struct, kw_only=True):
    """A rule: its name, kind and severity, every config key (as in `[[alerting.rules]]`), and its status."""

    name: str
    kind: str
    severity: Severity
    config: dict[str, Any]
    status: RuleStatus


class EvaluationError(msgspec.Struct, kw_only=True):
    """An evaluation of a backtest that failed, and why."""

    time_ns: int
    error: str


class Backtest(msgspec.Struct, kw_only=True):
    """A replayed timeline: the transitions, the notifications that would have gone out, the alerts at the end."""

    rule: str
    start_ns: int
    end_ns: int
    step_s: float
    evaluations: int
    transitions: list[AlertTransition]
    notifications: list[WouldNotify]
    alerts: list[Alert]
    errors: list[EvaluationError]


class BacktestRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rule (a configured rule's name, or a rule's config keys) and the range to replay it over."""

    rule: str | dict[str, Any]
    start: str | int
    end: str | int | None = None
    step: str | float | None = None


def _plain(value: Any) -> Any:
    """Config values as JSON builtins: durations as seconds; a secret only ever as `<secret>`."""
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, float):
        return float(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _rules(monitor: MonitorDep) -> list[Rule]:
    statuses = {status.name: status for status in monitor.alerting.rule_status()}
    found = []
    for config in monitor.alerting.rules:
        status = statuses[config.name]
        found.append(Rule(
            name=config.name, kind=config.kind, severity=config.severity,
            config=msgspec.to_builtins(config, enc_hook=_plain),
            status=status,
        ))
    return found


@get("/rules", summary="Every alert rule with its evaluation status", tags=["rules"])
async def list_rules(monitor: MonitorDep) -> list[Rule]:
    """The rules in evaluation order: config keys, and health, last error and timing of their evaluations."""
    return _rules(monitor)


@get("/rules/{name:str}", summary="One alert rule with its evaluation status", tags=["rules"])
async def get_rule(monitor: MonitorDep, name: FromPath[str]) -> Rule:
    """One rule by name; 404 when there is none."""
    for rule in _rules(monitor):
        if rule.name == name:
            return rule
    raise NotFoundException(f"no rule named {name!r}")


@post("/rules/backtest", status_code=200, summary="Replay a rule over stored history", tags=["rules"])
async def backtest(monitor: MonitorDep, data: JSONBody[BacktestRequest]) -> Backtest:
    """Every transition and each notification a rule would have made between start and end (nothing is saved)."""
    now = monitor.clock.now_ns()
    start_ns = _time(data.start, "start", now)
    end_ns = now if data.end is None else _time(data.end, "end", now)
    if start_ns >= end_ns:
        raise params.bad_body("end", "must be after start")
    step_s = None
    if data.step is not None:
        try:
            step_s = float(Duration.parse(data.step))
        except ValueError as error:
            raise params.bad_body("step", str(error)) from None
        if step_s <= 0:
            raise params.bad_body("step", "must be longer than 0s")
    if isinstance(data.rule, str) and data.rule not in {rule.name for rule in monitor.alerting.rules}:
        raise params.bad_body("rule", f"no rule named {data.rule!r}; give a configured rule's name or a rule's "
                                      "config keys")
    result = await monitor.alerting.backtest(data.rule, start_ns, end_ns, step_s)
    return Backtest(
        rule=result.rule, start_ns=result.start_ns, end_ns=result.end_ns, step_s=result.step_s,
        evaluations=result.evaluations, transitions=result.transitions,
        notifications=result.notifications,
        alerts=result.alerts, errors=[EvaluationError(time_ns=at, error=error) for at, error in result.errors],
    )


def _time(value: str | int, name: str, now_ns: int) -> int:
    try:
        found = params.time_ns(str(value), name, now_ns=now_ns)
    except ValidationException as error:
        raise params.bad_body(name, str(error.detail).removeprefix(f"{name}: ")) from None
    if found is None:
        raise params.bad_body(name, "give a time")
    return found


class RuleTestResult(msgspec.Struct, kw_only=True):
    """One test of a rule test file: passed, or the differences as readable blocks."""

    name: str
    passed: bool
    problems: list[str]


class RuleTestReport(msgspec.Struct, kw_only=True):
    """Every test of the file, and how many passed and failed."""

    passed: int
    failed: int
    tests: list[RuleTestResult]


@post("/rules/test", status_code=200, summary="Run a rule unit test file (TOML in the body)", tags=["rules"])
async def test_rules(monitor: MonitorDep, request: Request[Any, Any, Any]) -> RuleTestReport:
    """Run the tests of a promtool-style rule test file on virtual time, as `tocsin rules test` does; the file
    must give its rules inline (it cannot name a file on the server). A bad file is a 422 listing problems."""
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise params.bad_body("body", "the rule test file must be UTF-8 TOML") from None
    outcomes = await tocsin.run_rule_tests(text, monitor.pm, "request")
    tests = [RuleTestResult(name=o.name, passed=o.passed, problems=o.problems) for o in outcomes]
    return RuleTestReport(passed=sum(t.passed for t in tests), failed=sum(not t.passed for t in tests), tests=tests)


ROUTES = [list_rules, get_rule, backtest, test_rules]
