"""The egress guard: what HTTP channels may reach, checked before any connection, with pinning and caps.

No packet leaves loopback: names resolve through stub resolvers, and the transport under the guard is a spy
that fails the test if it is ever asked to connect anywhere but 127.0.0.0/8.
"""

from __future__ import annotations

import ipaddress

import httpx
import msgspec
import pytest

from tocsin import hookimpl
from tocsin.errors import DeliveryRefused, EgressDenied
from tocsin.models import Notification
from tocsin.notify.channel import NotificationChannel, Verdict, raise_for_status
from tocsin.notify.egress import EgressGuard, is_public
from tocsin.notify.service import NotifyService
from tocsin.testing import make_monitor
from tocsin.testing.receiver import HttpReceiver, Reply


class LoopbackOnly(httpx.AsyncBaseTransport):
    """The transport under the guard: records what it was asked to connect to, refuses anything off loopback."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(trust_env=False)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert ipaddress.ip_address(request.url.host).is_loopback, f"tried to connect to {request.url.host}"
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def stub(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return resolve


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True),
    ("127.0.0.1", False), ("::1", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.1.1", False),
    ("100.64.0.1", False), ("169.254.169.254", False), ("fd00:ec2::254", False), ("fe80::1", False),
    ("224.0.0.1", False), ("0.0.0.0", False), ("::", False), ("::ffff:127.0.0.1", False),
    ("::ffff:8.8.8.8", True), ("2002:7f00:1::1", False), ("64:ff9b::a9fe:a9fe", False),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo carrying 127.0.0.1
])
def test_which_addresses_are_public(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(("url", "reason"), [
    ("file:///etc/passwd", "only http and https"), ("gopher://example.com/", "only http and https"),
    ("http:///nohost", "no host"), ("http://127.0.0.1:8080/hook", "127.0.0.1 is not a public address"),
    ("http://[::1]/", "::1 is not a public address"), ("http://169.254.169.254/latest/meta-data", "not a public"),
    ("http://10.0.0.1/", "not a public"),
])
def test_urls_refused_without_dns(url, reason):
    with pytest.raises(EgressDenied, match=reason):
        EgressGuard().check_url(url)


def test_the_allow_list_takes_addresses_networks_and_names_and_the_guard_can_be_switched_off():
    guard = EgressGuard(["127.0.0.1", "10.1.0.0/16", "hooks.internal"])
    guard.check_url("http://127.0.0.1:9000/")
    guard.check_url("http://10.1.2.3/")
    with pytest.raises(EgressDenied):
        guard.check_url("http://10.2.0.1/")
    EgressGuard(allow_private=True).check_url("http://10.2.0.1/")
    assert guard.allowed_hosts == {"hooks.internal"}


async def test_a_name_resolving_to_loopback_is_refused_before_any_connection():
    spy = LoopbackOnly()
    names = {"hooks.example.com": ["127.0.0.1"], "mixed.example.com": ["8.8.8.8", "10.0.0.7"]}
    guard = EgressGuard(resolver=stub(names), transport=spy)
    async with guard.client(timeout_s=5) as client:
        with pytest.raises(EgressDenied, match=r"hooks\.example\.com: 127\.0\.0\.1 is not a public address"):
            await client.post("http://hooks.example.com/services/T/B/x", json={})
        with pytest.raises(EgressDenied, match=r"10\.0\.0\.7"):
            await client.post("https://mixed.example.com/", json={})  # any refused address refuses the host
        with pytest.raises(httpx.ConnectError, match=r"could not resolve nowhere\.example"):
            await client.get("http://nowhere.example/")
    assert spy.requests == []


async def test_an_allowed_name_is_pinned_to_the_vetted_address_with_its_host_header():
    async with HttpReceiver() as receiver:
        port = int(receiver.url.rsplit(":", 1)[1].rstrip("/"))
        spy = LoopbackOnly()
        guard = EgressGuard(["127.0.0.1"], resolver=stub({"hooks.example.com": ["127.0.0.1"]}), transport=spy)
        async with guard.client() as client:
            response = await client.post(f"http://hooks.example.com:{port}/hook", json={"a": 1})
    assert response.status_code == 200
    assert str(spy.requests[0].url) == f"http://127.0.0.1:{port}/hook"
    assert receiver.requests[0].headers["host"] == f"hooks.example.com:{port}"


async def test_redirects_are_not_followed_and_count_as_permanent():
    async with HttpReceiver([Reply(302, {"Location": "http://10.0.0.1/steal"})]) as receiver:
        spy = LoopbackOnly()
        async with EgressGuard(["127.0.0.1"], transport=spy).client() as client:
            response = await client.post(receiver.url, json={})
    assert response.status_code == 302 and len(spy.requests) == 1
    with pytest.raises(DeliveryRefused) as caught:
        raise_for_status(response, "webhook")
    assert "redirects are not followed" in str(caught.value)
    assert NotificationChannel.classify_error(None, caught.value) == Verdict.permanent(302)


async def test_response_bodies_are_read_up_to_the_cap():
    async with (HttpReceiver([Reply(500, body=b"x" * 1_000_000)]) as receiver,
                EgressGuard(["127.0.0.1"], max_response_bytes=4096).client() as client):
        response = await client.post(receiver.url, json={})
    assert response.status_code == 500 and len(response.content) == 4096


class Probe(NotificationChannel):
    """GETs a URL through the channel's guarded client."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        url: str

    async def send(self, notification: Notification) -> None:
        raise_for_status(await self.http.get(self.config.url), "probe")


class ProbePlugin:
    __name__ = "test-egress-probe"

    @hookimpl
    def register_notification_channels(self, register):
        register("probe", Probe)


async def test_test_sends_go_through_the_same_guard_as_notifications():
    results = []
    async with HttpReceiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        for allow in ([], ["127.0.0.1"]):
            monitor = make_monitor(ProbePlugin(), config={
                "channels": [{"name": "probe", "type": "probe", "url": f"http://hooks.example.com:{port}"}],
                "notifications": {"egress": {"allow": allow}}})
            service = NotifyService(monitor)
            service.egress.resolver = stub({"hooks.example.com": ["127.0.0.1"]})
            results.append(await service.test("probe"))
            await service.stop()
    refused, allowed = results
    assert (refused.ok, refused.outcome) == (False, "permanent")
    assert "EgressDenied" in refused.error and "127.0.0.1 is not a public address" in refused.error
    assert (allowed.ok, allowed.outcome) == (True, "sent")
    assert len(receiver.requests) == 1  # only the allowed attempt connected
