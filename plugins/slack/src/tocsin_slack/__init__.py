"""tocsin-slack: the `slack` notification channel, Block Kit messages over a Slack incoming webhook.

    [[channels]]
    name = "ops-slack"
    type = "slack"
    webhook_url = "${SLACK_WEBHOOK_URL}"
"""

from __future__ import annotations

from tocsin import hookimpl
from tocsin_slack.channel import SlackChannel

__all__ = ["SlackChannel", "register_notification_channels"]


@hookimpl
def register_notification_channels(register):
    """The `slack` channel type."""
    register("slack", SlackChannel)
