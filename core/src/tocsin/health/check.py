"""The interface every health check implements, and what one run of a check reports.

A check type is a class registered through `register_health_checks`, carrying a nested `Config` Struct
(its fields are the extra keys of a `[[health.checks]]` entry). The scheduler builds it once as
`Check(config, name=..., monitor=...)` and awaits `check()` every interval, under the component's timeout.
A check says what it saw; the scheduler turns that into the component's status (hysteresis, dependencies).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, get_args

import msgspec

from tocsin.models import HealthResult, HealthStatus

if TYPE_CHECKING:
    from tocsin.runtime import Runtime

STATUSES: frozenset[str] = frozenset(get_args(HealthStatus))


class CheckOutcome(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What one run of a check saw: a status, a reason, an observed number (latency, free %) and details."""

    status: HealthStatus = "healthy"
    message: str = ""
    observed: float | None = None
    details: dict[str, Any] = {}


def _nothing() -> None:
    return None


class HealthCheck(abc.ABC):
    """Checks one component; built as `Check(config, name=..., monitor=...)`, run by the health scheduler.

    Subclasses set a nested `Config` Struct and implement `check()`. Raising is fine: the component is then
    unhealthy with the exception as the reason. `wake` is set by the scheduler: push-style checks (heartbeats)
    call it to be run at once instead of at the next interval.
    """

    Config: ClassVar[type[msgspec.Struct]]

    def __init__(self, config: msgspec.Struct, *, name: str = "", monitor: Runtime | None = None) -> None:
        self.config = config
        self.name = name or type(self).__name__
        self.monitor = monitor
        self.wake = _nothing

    @abc.abstractmethod
    async def check(self) -> CheckOutcome:
        """Look at the component once and say how it is."""

    def resume(self, last: HealthResult) -> None:
        """Pick up state from the newest stored result when the scheduler starts (heartbeats keep their last beat)."""
        return None

    async def close(self) -> None:
        """Release what the check holds (connections, clients); called when the scheduler stops."""
        return None


def outcome_of(value: object) -> CheckOutcome:
    """Read what a plain function returned: None or True is healthy, False unhealthy, a status name that status.

    A CheckOutcome is taken as is; anything else is unhealthy, with a message naming what was returned.
    """
    if value is None or value is True:
        return CheckOutcome()
    if value is False:
        return CheckOutcome(status="unhealthy", message="check returned False")
    if isinstance(value, CheckOutcome):
        return value
    if isinstance(value, str) and value in STATUSES:
        return CheckOutcome(status=value)  # type: ignore[arg-type]  # checked against HealthStatus above
    return CheckOutcome(
        status="unhealthy",
        message=f"check returned {type(value).__name__} {value!r}; return None, a bool, a status name or a "
        "CheckOutcome",
    )
