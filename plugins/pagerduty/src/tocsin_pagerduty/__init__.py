"""tocsin-pagerduty: the `pagerduty` notification channel, PagerDuty Events API v2.

    [[channels]]
    name = "pager"
    type = "pagerduty"
    routing_key = "${PAGERDUTY_ROUTING_KEY}"
    min_severity = "error"
"""

from __future__ import annotations

from tocsin import hookimpl
from tocsin_pagerduty.channel import PagerDutyChannel

__all__ = ["PagerDutyChannel", "register_notification_channels"]


@hookimpl
def register_notification_channels(register):
    """The `pagerduty` channel type."""
    register("pagerduty", PagerDutyChannel)
