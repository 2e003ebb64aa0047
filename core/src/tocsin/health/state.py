"""How check outcomes become statuses: hysteresis per component, the dependency graph, and the system status.

A component's own status moves only after `failures_before_unhealthy` consecutive unhealthy outcomes, and
leaves unhealthy only after `successes_before_healthy` consecutive healthy or degraded ones (Uptime Kuma's
retries and recovery threshold); healthy and degraded outcomes switch between each other at once, and an
"unknown" outcome changes nothing. Its effective status is degraded, with the cause named, while anything it
depends on (directly or not) is unhealthy — the cause is the deepest unhealthy dependency, the root of the
failure — and a component with a cause has its own alerts inhibited. The system status is the worst
effective status over critical components (unhealthy > degraded > healthy > unknown); an unhealthy
non-critical component makes it degraded at worst.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tocsin.errors import ConfigError
from tocsin.models import HealthStatus

SEVERITY: dict[str, int] = {"unknown": 0, "healthy": 1, "degraded": 2, "unhealthy": 3}


@dataclass
class ComponentState:
    """One component's hysteresis counters and statuses."""

    failures_before_unhealthy: int = 1
    successes_before_healthy: int = 1
    critical: bool = True
    own: HealthStatus = "unknown"
    failures: int = 0
    successes: int = 0
    effective: HealthStatus = "unknown"
    cause: str | None = None
    since_ns: int | None = None
    message: str = ""
    last_check_ns: int | None = None
    depends_on: tuple[str, ...] = field(default_factory=tuple)

    def observe(self, outcome: HealthStatus) -> None:
        """Apply one check outcome to the own status, with hysteresis."""
        if outcome == "unknown":
            return
        if outcome == "unhealthy":
            self.successes = 0
            self.failures += 1
            if self.failures >= self.failures_before_unhealthy:
                self.own = "unhealthy"
            return
        self.failures = 0
        if self.own != "unhealthy":
            self.own = outcome
            return
        self.successes += 1
        if self.successes >= self.successes_before_healthy:
            self.own = outcome
            self.successes = 0


def root_cause(name: str, states: Mapping[str, ComponentState]) -> str | None:
    """The deepest unhealthy component `name` depends on (directly or through others), or None."""

    def walk(current: str, seen: frozenset[str]) -> str | None:
        for dependency in states[current].depends_on:
            if dependency in seen or dependency not in states:
                continue
            deeper = walk(dependency, seen | {dependency})
            if deeper is not None:
                return deeper
            if states[dependency].own == "unhealthy":
                return dependency
        return None

    return walk(name, frozenset({name}))


def settle_effective(states: Mapping[str, ComponentState], now_ns: int) -> list[tuple[str, HealthStatus]]:
    """Recompute every effective status from own statuses; returns (component, previous) for each that changed."""
    changed: list[tuple[str, HealthStatus]] = []
    causes = {name: root_cause(name, states) for name in states}
    for name, state in states.items():
        cause = causes[name]
        effective: HealthStatus = "degraded" if cause is not None else state.own
        if (effective, cause) != (state.effective, state.cause):
            if effective != state.effective:
                changed.append((name, state.effective))
                state.since_ns = now_ns
            state.effective, state.cause = effective, cause
    return changed


def system_status(states: Mapping[str, ComponentState]) -> HealthStatus:
    """Worst effective status over critical components; a non-critical unhealthy one degrades at worst."""
    return worst_status((state.effective, state.critical) for state in states.values())


def worst_status(statuses: Iterable[tuple[HealthStatus, bool]]) -> HealthStatus:
    """The system status of (status, critical) pairs: the worst status of a critical component; an unhealthy
    non-critical one degrades it at worst."""
    worst: HealthStatus = "unknown"
    for status, critical in statuses:
        if not critical:
            if status != "unhealthy":
                continue
            status = "degraded"
        if SEVERITY.get(status, 0) > SEVERITY[worst]:
            worst = status
    return worst


def check_graph(depends_on: Mapping[str, Sequence[str]]) -> None:
    """Every dependency names a component and there are no cycles; else ConfigError naming them."""
    for name, dependencies in depends_on.items():
        for dependency in dependencies:
            if dependency not in depends_on:
                raise ConfigError(f"health component {name!r} depends on {dependency!r}, which is not a component; "
                                  f"known: {', '.join(sorted(depends_on)) or 'none'}")
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name):], name]
            raise ConfigError(f"health components depend on each other in a cycle: {' -> '.join(cycle)}")
        visiting.append(name)
        for dependency in depends_on[name]:
            visit(dependency)
        visiting.pop()
        done.add(name)

    for name in depends_on:
        visit(name)
