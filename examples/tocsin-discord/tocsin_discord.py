"""tocsin-discord: the `discord` notification channel, posting to a Discord webhook (a third-party plugin)."""

import msgspec

from tocsin import Notification, NotificationChannel, hookimpl
from tocsin.ext import RateLimit, Secret, raise_for_status

MAX_CONTENT = 2000  # Discord refuses longer messages


class DiscordChannel(NotificationChannel):
    """Posts each notification to a Discord webhook: the title in bold, then the body."""

    rate_limit = RateLimit(5, 2.0)  # Discord allows about 5 messages per 2 s per webhook

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        webhook_url: Secret
        username: str = "tocsin"

    async def send(self, notification: Notification) -> None:
        content = f"**{notification.title}**\n{notification.body}"
        if len(content) > MAX_CONTENT:
            content = content[: MAX_CONTENT - 1] + "…"
        response = await self.http.post(self.config.webhook_url.reveal(), json={
            "username": self.config.username, "content": content,
            "allowed_mentions": {"parse": []},  # an alert saying "@everyone" pings no one
        })
        raise_for_status(response, "Discord")  # 429 and 5xx are retried, other 4xx are not

    def destination(self) -> str:
        return self.config.webhook_url.reveal()  # the rate limit is per webhook


@hookimpl
def register_notification_channels(register):
    """The `discord` channel type."""
    register("discord", DiscordChannel)
