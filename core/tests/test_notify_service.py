"""The notify service around the dispatcher: previews, test sends, the log channel, config checks, the CLI."""

from __future__ import annotations

import logging
import textwrap

import httpx
import msgspec
import pytest

from tocsin import hookimpl
from tocsin.cli import main
from tocsin.errors import ConfigError, DeliveryError, DeliveryRefused, EgressDenied, UnknownName
from tocsin.models import Alert, AlertTransition, Notification
from tocsin.notify.channel import NotificationChannel, Verdict, classify_status, parse_retry_after
from tocsin.notify.service import NotifyService
from tocsin.storage.protocol import DeliveryQuery, LogQuery
from tocsin.testing import make_monitor

ALERT = Alert(fingerprint="fp1", rule="disk-full", severity="error", labels={"host": "db-1"}, state="firing",
              episode=3, annotations={"summary": "Disk at 97%"})


class Minimal(NotificationChannel):
    """A third-party channel as small as it gets: a Config and send."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        prefix: str = ""

    received: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.received.append(msgspec.structs.replace(notification, title=self.config.prefix + notification.title))


class Refusing(NotificationChannel):
    """A channel whose own config check fails."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        url: str

    def validate_config(self) -> list[str]:
        return [f"url: {self.config.url!r} is not a webhook URL"]

    async def send(self, notification: Notification) -> None:
        raise DeliveryError("never")


class Plugins:
    __name__ = "test-notify-service"

    @hookimpl
    def register_notification_channels(self, register):
        register("minimal", Minimal)
        register("refusing", Refusing)


def monitor_for(*channels: dict, **notifications):
    return make_monitor(Plugins(), config={"channels": list(channels), "notifications": notifications})


async def test_preview_renders_exactly_what_the_channel_would_send_and_says_whether_it_would():
    monitor = monitor_for({"name": "ops", "type": "log", "level": "error", "title_template": "{{ rule }} on "
                           "{{ alert.labels.host }}"}, {"name": "pager", "type": "log", "min_severity": "critical"})
    service = monitor.notify
    preview = service.preview(ALERT, "ops")
    assert preview.would_send and preview.reason == ""
    assert preview.notification.title == "disk-full on db-1"
    assert preview.notification.idempotency_key == "tocsin/disk-full/fp1/3"
    assert preview.payload == {"logger": "tocsin.notifications", "level": "error",
                               "message": "disk-full on db-1\n- [FIRING] disk-full {host=db-1}: Disk at 97%",
                               "fields": {"channel": "ops", "kind": "firing", "rule": "disk-full", "fingerprint": "fp1",
                                          "idempotency_key": "tocsin/disk-full/fp1/3"}}
    pager = service.preview(ALERT, "pager", kind="resolved")
    assert not pager.would_send and pager.reason == "severity error is below the channel's min_severity critical"
    assert pager.notification.title == "[RESOLVED] disk-full"
    with pytest.raises(UnknownName, match="no channel named 'nope'; configured: ops, pager"):
        service.preview(ALERT, "nope")


async def test_test_send_reports_success_and_classified_failure():
    monitor = monitor_for({"name": "ok", "type": "minimal", "prefix": "> "},
                          {"name": "broken", "type": "captured", "fail_times": 1, "fail_permanently": True})
    service = monitor.notify
    Minimal.received = []
    ok = await service.test("ok")
    broken = await service.test("broken")
    assert (ok.ok, ok.outcome) == (True, "sent")
    assert Minimal.received[0].title == "> [TEST] tocsin test notification" and Minimal.received[0].kind == "test"
    assert (broken.ok, broken.outcome) == (False, "permanent") and "told to fail attempt 1" in broken.error


async def test_the_log_channel_writes_to_the_monitors_own_log():
    monitor = monitor_for({"name": "ops", "type": "log", "logger": "alerts"}, group_wait="0s")
    async with monitor:
        service = monitor.notify
        transition = AlertTransition(fingerprint="fp1", rule="disk-full", time_ns=monitor.clock.now_ns(),
                                     from_state="pending", to_state="firing")
        rows = service.router.deliveries_for(ALERT, transition, monitor.clock.now_ns())
        await monitor.storage.save_alert(ALERT, [transition], rows)
        await service.dispatch_due()
        await service.settled()
        await monitor.flush()
        hits = (await monitor.storage.search_logs(LogQuery(text="disk"))).items
        log = await service.deliveries(DeliveryQuery(channel="ops", state="sent"))
        await service.stop()
    (hit,) = hits
    assert hit.record.logger == "alerts" and hit.record.level == "warning"
    assert hit.record.message.startswith("[FIRING] disk-full (error)")
    assert hit.record.attributes["idempotency_key"] == "tocsin/disk-full/fp1/3"
    assert [row.id for row in log.items] == [rows[0].id]


def test_the_log_channel_without_a_running_monitor_uses_stdlib_logging(caplog):
    from tocsin.builtins.log_channel import LogChannel

    channel = LogChannel(LogChannel.Config(logger="tocsin.test-notify"), name="ops")
    import asyncio

    with caplog.at_level(logging.INFO, logger="tocsin.test-notify"):
        asyncio.run(channel.send(Notification(title="Disk full", body="db-1", kind="firing")))
    (record,) = caplog.records
    assert record.getMessage() == "Disk full\ndb-1" and record.tocsin_channel == "ops"


def test_bad_channel_settings_are_config_errors_with_paths():
    with pytest.raises(ConfigError) as caught:
        monitor_for({"name": "a", "type": "log", "fallback": "a"},
                    {"name": "b", "type": "log", "fallback": "zz", "group_by": ["...", "host"]}, fallback="nowhere")
    assert sorted((p.path, p.message) for p in caught.value.problems) == [
        ("channels[0].fallback", "a channel cannot be its own fallback"),
        ("channels[1].fallback", "unknown channel 'zz'; a, b"),
        ("channels[1].group_by", '"..." (no grouping) cannot be combined with label names'),
        ("notifications.fallback", "unknown channel 'nowhere'; a, b"),
    ]
    with pytest.raises(ConfigError) as caught:  # a channel's own check runs when the service builds it
        NotifyService(monitor_for({"name": "c", "type": "refusing", "url": "ftp://x"}))
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert problems == [("channels[0]", "url: 'ftp://x' is not a webhook URL")]


def test_the_default_error_classification_follows_the_retry_matrix():
    channel = Minimal(Minimal.Config())
    request = httpx.Request("POST", "https://hooks.example.com/x")

    def status(code: int, **headers: str) -> httpx.HTTPStatusError:
        return httpx.HTTPStatusError("x", request=request, response=httpx.Response(code, headers=headers))

    assert channel.classify_error(status(500)) == Verdict.retryable(500)
    assert channel.classify_error(status(503)) == Verdict.retryable(503)
    assert channel.classify_error(status(429, **{"Retry-After": "7"})) == Verdict.rate_limited(7.0)
    assert channel.classify_error(status(400)) == Verdict.permanent(400)
    assert channel.classify_error(status(404)) == Verdict.permanent(404)
    assert channel.classify_error(httpx.ConnectTimeout("x")) == Verdict.retryable()
    assert channel.classify_error(ConnectionResetError()) == Verdict.retryable()
    assert channel.classify_error(DeliveryError("flaky")) == Verdict.retryable()
    assert channel.classify_error(DeliveryRefused("no", status_code=410)) == Verdict.permanent(410)
    assert channel.classify_error(DeliveryRefused("smtp 451", permanent=False)) == Verdict.retryable()
    assert channel.classify_error(EgressDenied("private")) == Verdict.permanent()
    assert channel.classify_error(KeyError("a bug in the channel")) == Verdict.permanent()
    assert classify_status(408) == Verdict.retryable(408)
    assert parse_retry_after("120") == 120.0 and parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("³") is None  # a digit to str.isdigit(), not to float()
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now


async def test_stopping_closes_the_channels_http_clients():
    monitor = monitor_for({"name": "m", "type": "minimal"})
    service = monitor.notify
    client = service.channels["m"].http
    assert service.channels["m"].http is client
    await service.stop()
    assert client.is_closed and service.channels["m"]._http is None


def test_cli_notify_test_sends_to_a_configured_channel(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOCSIN_LOAD_PLUGINS", "")
    config = tmp_path / "tocsin.toml"
    config.write_text(textwrap.dedent("""
        [storage]
        backend = "memory"

        [[channels]]
        name = "ops"
        type = "log"
    """))
    with caplog.at_level(logging.WARNING, logger="tocsin.notifications"), pytest.raises(SystemExit) as ok:
        main(["notify", "test", "ops", "--config", str(config)])
    assert ok.value.code in (0, None)
    assert "ops: test notification sent" in capsys.readouterr().out
    assert [r.getMessage().splitlines()[0] for r in caplog.records] == ["[TEST] tocsin test notification"]
    with pytest.raises(SystemExit) as missing:
        main(["notify", "test", "pager", "--config", str(config)])
    assert missing.value.code == 1
    assert "no channel named 'pager'; configured: ops" in capsys.readouterr().err
