"""The email channel against a real SMTP server (aiosmtpd) on 127.0.0.1: what arrives, over what, and retries."""

from __future__ import annotations

import asyncio
import re

import msgspec
import pytest
import tocsin_email
from email_test_server import PASSWORD, USER, alternatives, decoded
from tocsin_email import EmailChannel, EmailConfig

from tocsin.clock import VirtualClock
from tocsin.errors import ConfigError
from tocsin.models import Alert, AlertTransition, Notification
from tocsin.notify.channel import Verdict
from tocsin.notify.service import NotifyService
from tocsin.notify.templates import context_for, rendered
from tocsin.testing import make_monitor
from tocsin.values import Secret, enc_hook

T0 = 1_700_000_000 * 10**9
SENDER = "tocsin alerts <alerts@example.com>"


def disk_alert(host: str = "web-1", fingerprint: str = "fp1") -> Alert:
    return Alert(
        fingerprint=fingerprint, rule="disk-full", severity="critical", state="firing", episode=1, value=97.25,
        fired_at_ns=T0, labels={"host": host, "mount": "<data>"},
        annotations={"summary": f"Disk <full> on {host} & rising", "description": "line one\nline two",
                     "runbook_url": "https://runbooks.example.com/disk?a=1&b=2", "evil_url": "javascript:alert(1)"},
    )


def notification_for(alert: Alert, kind: str = "firing") -> Notification:
    """The notification the dispatcher would render for one alert (built-in templates)."""
    draft = Notification(title="", body="", severity=alert.severity, kind=kind, alert=alert,
                         idempotency_key=f"tocsin/{alert.rule}/{alert.fingerprint}/{alert.episode}",
                         links={"Dashboard": "https://grafana.example.com/d/disk"})
    return rendered(draft, context_for(draft, channel="mail"))


def channel(port: int, **options) -> EmailChannel:
    options = {"host": "127.0.0.1", "port": port, "tls": "none", "sender": SENDER,
               "to": ["Ops <ops@example.com>"], "local_hostname": "tocsin.test", **options}
    return EmailChannel(EmailConfig(**options), name="mail")


# -- the message ---------------------------------------------------------------------------------------


async def test_plain_smtp_delivers_text_then_escaped_html_with_headers_and_envelope(smtp_server):
    server = smtp_server()
    mail = channel(server.port, cc=["lead@example.com", "ops@example.com"],
                   subject="[{{ severity|upper }}] {{ alert.annotations.summary }}")
    await mail.send(notification_for(disk_alert()))
    (got,) = server.received
    message = got.message
    assert got.mail_from == "alerts@example.com"
    assert got.rcpt_tos == ["ops@example.com", "lead@example.com"]  # to and cc, each once
    assert not got.tls and not got.authenticated
    assert message["From"] == SENDER and message["To"] == "Ops <ops@example.com>"
    assert message["Cc"] == "lead@example.com, ops@example.com"
    assert message["Subject"] == "[CRITICAL] Disk <full> on web-1 & rising"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Tocsin-Key"] == "tocsin/disk-full/fp1/1"
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.com>", message["References"])
    text, html = alternatives(message)
    assert "Disk <full> on web-1 & rising" in text and "mount=<data>" in text  # plain text is not escaped
    assert "Dashboard: https://grafana.example.com/d/disk" in text
    assert "runbook_url: https://runbooks.example.com/disk?a=1&b=2" in text
    assert "Disk &lt;full&gt; on web-1 &amp; rising" in html and "mount=&lt;data&gt;" in html
    assert "<full>" not in html and "<data>" not in html
    assert "background:#c62828" in html  # critical
    assert 'href="https://runbooks.example.com/disk?a=1&amp;b=2"' in html
    assert 'href="https://grafana.example.com/d/disk"' in html
    assert "javascript:alert(1)" in html and 'href="javascript' not in html  # shown as a note, never a link
    assert "line one\nline two" in html and "97.25" in html and "Firing since 2023-11-14 22:13:20 UTC" in html
    assert '<meta name="viewport"' in html


async def test_resolved_is_green_and_html_can_be_switched_off(smtp_server):
    server = smtp_server()
    resolved = msgspec.structs.replace(disk_alert(), state="resolved", resolved_at_ns=T0 + 60 * 10**9)
    await channel(server.port).send(notification_for(resolved, kind="resolved"))
    await channel(server.port, html=False).send(notification_for(resolved, kind="resolved"))
    with_html, text_only = (received.message for received in server.received)
    _, html = alternatives(with_html)
    assert "background:#2e7d32" in html and "Resolved at 2023-11-14 22:14:20 UTC" in html
    assert with_html["Subject"] == "[RESOLVED] disk-full"
    assert text_only.get_content_type() == "text/plain" and not text_only.is_multipart()
    assert decoded(text_only).startswith("[RESOLVED] disk-full\n\n- [RESOLVED] disk-full")


# -- TLS and AUTH --------------------------------------------------------------------------------------


async def test_starttls_with_the_test_ca_then_auth(smtp_server, server_tls, ca_file):
    server = smtp_server(tls_context=server_tls, require_starttls=True, auth_required=True,
                         auth_require_tls=True)
    mail = channel(server.port, tls="starttls", ca_file=str(ca_file), username=USER, password=Secret(PASSWORD))
    await mail.send(notification_for(disk_alert()))
    (got,) = server.received
    assert got.tls and got.authenticated
    assert server.recorder.logins == [(USER.encode(), PASSWORD.encode(), True)]  # AUTH came after STARTTLS


async def test_implicit_tls_without_certificate_checks(smtp_server, server_tls):
    server = smtp_server(ssl_context=server_tls)
    await channel(server.port, tls="implicit", validate_certs=False).send(notification_for(disk_alert()))
    (got,) = server.received
    assert got.tls


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_a_certificate_from_an_unknown_ca_is_refused_permanently(smtp_server, server_tls, tls):
    server = smtp_server(**{"tls_context" if tls == "starttls" else "ssl_context": server_tls})
    mail = channel(server.port, tls=tls)  # the system CAs do not know the test CA
    with pytest.raises(Exception) as caught:
        await mail.send(notification_for(disk_alert()))
    assert mail.classify_error(caught.value).kind == "permanent"
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert server.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_starttls_mode_never_sends_credentials_to_a_server_without_starttls(smtp_server):
    server = smtp_server(auth_required=True, auth_require_tls=False)  # would take AUTH in clear text
    mail = channel(server.port, tls="starttls", username=USER, password=Secret(PASSWORD))
    with pytest.raises(Exception) as caught:
        await mail.send(notification_for(disk_alert()))
    assert "STARTTLS" in str(caught.value) and mail.classify_error(caught.value) == Verdict.permanent()
    assert server.recorder.logins == [] and server.received == []


async def test_credentials_for_a_server_that_offers_no_auth_are_a_permanent_failure(smtp_server):
    server = smtp_server()  # no authenticator: no AUTH in its EHLO
    mail = channel(server.port, username=USER, password=Secret(PASSWORD), allow_insecure_auth=True)
    with pytest.raises(Exception) as caught:
        await mail.send(notification_for(disk_alert()))
    assert "AUTH extension is not supported" in str(caught.value)
    assert mail.classify_error(caught.value) == Verdict.permanent() and server.received == []


def test_auth_without_tls_needs_allow_insecure_auth():
    plain = {"host": "127.0.0.1", "tls": "none", "from": SENDER, "to": ["ops@example.com"],
             "username": USER, "password": PASSWORD}
    with pytest.raises(ConfigError) as caught:
        make_monitor(tocsin_email, config={"channels": [{"name": "mail", "type": "email", **plain}]})
    assert 'channels[0]: username: with tls = "none" the password would be sent in clear text' in str(caught.value)
    assert PASSWORD not in str(caught.value)
    allowed = {"name": "mail", "type": "email", **plain, "allow_insecure_auth": True}
    make_monitor(tocsin_email, config={"channels": [allowed]})


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_explicitly_insecure_auth_works_on_a_plain_server(smtp_server):
    server = smtp_server(auth_required=True, auth_require_tls=False)
    mail = channel(server.port, username=USER, password=Secret(PASSWORD), allow_insecure_auth=True)
    await mail.send(notification_for(disk_alert()))
    assert server.received[0].authenticated and server.recorder.logins == [(USER.encode(), PASSWORD.encode(), False)]


def test_config_problems_are_reported_with_their_keys(tmp_path):
    bad = [
        ({"to": []}, "to: expected at least one recipient address"),
        ({"from": "not an address"}, "from: expected one address like"),
        ({"cc": ["ok@example.com", "a@b\r\nBcc: x@y"]}, "cc[1]: an address cannot contain a line break"),
        ({"username": USER}, "username and password: set both for AUTH, or neither"),
        ({"subject": "{{ nope }}"}, "subject: unknown variable(s) nope"),
        ({"ca_file": str(tmp_path / "missing.pem")}, "ca_file: cannot load CA certificates from"),
        ({"tls": "none", "validate_certs": False}, "ca_file and validate_certs: only apply with tls"),
        ({"tls": "sometimes"}, "expected one of starttls|implicit|none"),
    ]
    for change, expected in bad:
        entry = {"name": "mail", "type": "email", "host": "smtp.example.com", "from": SENDER,
                 "to": ["ops@example.com"], **change}
        with pytest.raises(ConfigError) as caught:
            make_monitor(tocsin_email, config={"channels": [entry]})
        assert expected in str(caught.value), (change, str(caught.value))


def test_the_password_never_prints():
    config = EmailConfig(host="smtp.example.com", sender=SENDER, to=["ops@example.com"], username=USER,
                         password=Secret(PASSWORD))
    assert PASSWORD not in repr(config)
    assert PASSWORD.encode() not in msgspec.json.encode(config, enc_hook=enc_hook)
    preview = EmailChannel(config, name="mail").render_preview(notification_for(disk_alert()))
    assert PASSWORD not in repr(preview)


# -- through the dispatcher ----------------------------------------------------------------------------


def mail_monitor(port: int, clock: VirtualClock, **options):
    entry = {"name": "mail", "type": "email", "host": "127.0.0.1", "port": port, "tls": "none", "from": SENDER,
             "to": ["ops@example.com"], "local_hostname": "tocsin.test", **options}
    settings = {"group_wait": "0s", "retry_initial": "1s"}
    return make_monitor(tocsin_email, config={"channels": [entry], "notifications": settings}, clock=clock)


async def route(service: NotifyService, *alerts: Alert) -> list:
    rows = []
    for alert in alerts:
        transition = AlertTransition(fingerprint=alert.fingerprint, rule=alert.rule, time_ns=T0,
                                     from_state="pending", to_state="firing")
        batch = service.router.deliveries_for(alert, transition, service.monitor.clock.now_ns())
        await service.monitor.storage.save_alert(alert, [transition], batch)
        rows.extend(batch)
    return rows


async def until_final(service: NotifyService, clock: VirtualClock, delivery_id: str):
    """Dispatch, wait, and jump the clock to each next attempt until the delivery is sent or failed."""
    for _ in range(10):
        await service.dispatch_due()
        await service.settled()
        row = await service.delivery(delivery_id)
        if row.state in ("sent", "failed"):
            return row, await service.attempts(delivery_id)
        await clock.advance((row.next_attempt_ns - clock.now_ns()) / 1e9)
    raise AssertionError(f"delivery {delivery_id} still {row.state}")


async def test_a_group_goes_out_as_one_email_listing_every_alert(smtp_server):
    server = smtp_server()
    clock = VirtualClock(T0)
    async with mail_monitor(server.port, clock, subject="{{ title }} [{{ alerts|length }} hosts]") as monitor:
        service = monitor.notify
        rows = await route(service, *(disk_alert(f"web-{i}", f"fp{i}") for i in range(3)))
        final, attempts = await until_final(service, clock, rows[0].id)
        preview = service.preview(disk_alert(), "mail")
        await service.stop()
    assert final.state == "sent" and [a.outcome for a in attempts] == ["sent"]
    (got,) = server.received
    assert got.message["Subject"] == "[FIRING:3] disk-full (critical) [3 hosts]"
    text, html = alternatives(got.message)
    for host in ("web-0", "web-1", "web-2"):
        assert f"host={host}" in text and f"Disk &lt;full&gt; on {host}" in html  # the HTML lists the whole group
    assert preview.payload["subject"] == "[FIRING] disk-full (critical) [1 hosts]"
    assert "Disk &lt;full&gt; on web-1" in preview.payload["html"] and preview.payload["tls"] == "none"


async def test_a_notification_carrying_a_group_lists_every_alert_when_sent_by_hand(smtp_server):
    server = smtp_server()
    alerts = [disk_alert(f"web-{i}", f"fp{i}") for i in range(3)]
    resolved = msgspec.structs.replace(alerts[2], state="resolved", resolved_at_ns=T0 + 60 * 10**9)
    draft = Notification(title="", body="", severity="critical", kind="firing", alert=alerts[0],
                         alerts=[*alerts[:2], resolved], alert_kinds=["firing", "firing", "resolved"],
                         idempotency_key="tocsin/group/abc")
    await channel(server.port).send(rendered(draft, context_for(draft, channel="mail")))
    (got,) = server.received
    text, html = alternatives(got.message)
    for host in ("web-0", "web-1", "web-2"):
        assert f"host={host}" in text and f"Disk &lt;full&gt; on {host}" in html
    assert "[RESOLVED] disk-full" in text and html.count(">RESOLVED<") == 1 and html.count(">FIRING<") == 2


async def test_a_4xx_reply_is_retried_and_then_accepted(smtp_server):
    server = smtp_server()
    server.recorder.data_replies.append("451 4.3.0 Mail server temporarily rejected message")
    clock = VirtualClock(T0)
    async with mail_monitor(server.port, clock) as monitor:
        (row,) = await route(monitor.notify, disk_alert())
        final, attempts = await until_final(monitor.notify, clock, row.id)
        await monitor.notify.stop()
    assert final.state == "sent" and len(server.received) == 1
    assert [(a.outcome, a.status_code) for a in attempts] == [("retryable", 451), ("sent", None)]
    assert "temporarily rejected" in attempts[0].error


async def test_a_5xx_reply_is_permanent(smtp_server):
    server = smtp_server()
    server.recorder.data_replies.append("554 5.7.1 Message rejected as spam")
    clock = VirtualClock(T0)
    async with mail_monitor(server.port, clock) as monitor:
        (row,) = await route(monitor.notify, disk_alert())
        final, attempts = await until_final(monitor.notify, clock, row.id)
        await monitor.notify.stop()
    assert final.state == "failed" and server.received == []
    assert [(a.outcome, a.status_code) for a in attempts] == [("permanent", 554)]


async def test_a_wrong_password_is_permanent_and_never_logged(smtp_server, server_tls, ca_file):
    server = smtp_server(tls_context=server_tls, auth_required=True)
    wrong = "hunter2-wrong-password"
    clock = VirtualClock(T0)
    async with mail_monitor(server.port, clock, tls="starttls", ca_file=str(ca_file), username=USER,
                            password=wrong) as monitor:
        (row,) = await route(monitor.notify, disk_alert())
        final, attempts = await until_final(monitor.notify, clock, row.id)
        await monitor.notify.stop()
    assert final.state == "failed" and [(a.outcome, a.status_code) for a in attempts] == [("permanent", 535)]
    assert server.recorder.logins[0] == (USER.encode(), wrong.encode(), True)
    assert wrong not in attempts[0].error and wrong not in final.last_error


async def test_a_partly_refused_message_is_retried_only_for_the_refused_recipient(smtp_server):
    server = smtp_server()
    server.recorder.rcpt_replies["lead@example.com"] = ["450 4.2.1 Mailbox busy"]
    clock = VirtualClock(T0)
    async with mail_monitor(server.port, clock, cc=["lead@example.com"]) as monitor:
        (row,) = await route(monitor.notify, disk_alert())
        final, attempts = await until_final(monitor.notify, clock, row.id)
        await monitor.notify.stop()
    assert final.state == "sent"
    assert [(a.outcome, a.status_code) for a in attempts] == [("retryable", 450), ("sent", None)]
    assert "refused 1 of 2 recipient(s): lead@example.com: 450" in attempts[0].error
    assert [got.rcpt_tos for got in server.received] == [["ops@example.com"], ["lead@example.com"]]


async def test_a_server_that_never_answers_times_out_and_is_retried():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection, never sends a greeting
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = VirtualClock(T0)
    try:
        async with mail_monitor(port, clock, timeout="200ms") as monitor:
            (row,) = await route(monitor.notify, disk_alert())
            await monitor.notify.dispatch_due()
            await monitor.notify.settled()
            pending = await monitor.notify.delivery(row.id)
            (attempt,) = await monitor.notify.attempts(row.id)
            await monitor.notify.stop()
    finally:
        server.close()
        await server.wait_closed()
    assert pending.state == "pending" and attempt.outcome == "retryable"
    assert "Timeout" in attempt.error
