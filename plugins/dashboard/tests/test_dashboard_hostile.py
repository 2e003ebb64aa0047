"""Hostile data in the browser: log messages, label values, span names, attributes, workflow errors and alert
annotations holding markup, `javascript:` URLs and template syntax are shown as the text they are, and no
script of theirs runs (no flag set, no dialog, no element made from them, no CSP violation)."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

SCRIPT = "<script>window.pwned = 1</script>"
IMG = '"><img src=x onerror="window.pwned = 2; alert(2)">'
JS_URL = "javascript:window.pwned = 3"
TEMPLATE = "{{7*7}} ${7*7} {% raw %}"
HOSTILE = [SCRIPT, IMG, JS_URL, TEMPLATE]
TRACE = "0af7651916cd43dd8448eb211c80319c"
RULE = {"name": "hostile", "metric": "hostile_depth", "aggregate": "last", "by": ["where"], "threshold": 1,
        "annotations": {"summary": "{{ labels.where }} " + IMG}}


@pytest.fixture(scope="module")
def hostile(make_shop):
    shop = make_shop({"alerting": {"rules": [RULE]}})
    now = time.time_ns()
    spans = [{"trace_id": TRACE, "span_id": f"{i + 1:016x}", "parent_span_id": None if i == 0 else f"{1:016x}",
              "name": text, "service": "shop", "start_ns": now - 10_000_000 + i, "end_ns": now,
              "attributes": {"payload": text, text: "key"}, "status": "error", "status_message": text}
             for i, text in enumerate(HOSTILE)]
    logs = [{"time_ns": now - i, "level": "error", "message": f"boom {text}", "service": "shop", "trace_id": TRACE,
             "span_id": f"{i + 1:016x}", "attributes": {"html": text}} for i, text in enumerate(HOSTILE)]
    with httpx.Client(base_url=shop.base, timeout=10) as http:
        assert http.post("/api/v1/traces", json=spans).status_code == 202
        assert http.post("/api/v1/logs", json=logs).status_code == 202
        samples = [{"name": "hostile_depth", "kind": "gauge", "value": 5, "labels": {"where": text}}
                   for text in HOSTILE]
        assert http.post("/api/v1/metrics", json=samples).status_code == 202

    async def run() -> None:
        try:
            async with shop.monitor.workflows.execution("nightly", params={"note": IMG}) as run, run.step("load"):
                raise RuntimeError(SCRIPT)
        except RuntimeError:
            pass
        await shop.monitor.flush()
        await shop.monitor.alerting.evaluate()

    shop.server.call(run())
    fingerprint = shop.get("/api/v1/alerts")["items"][0]["fingerprint"]
    return shop, fingerprint


def pages(fingerprint: str) -> list[str]:
    return ["/", "/ui/logs", "/ui/logs?q=boom", f"/ui/traces?trace={TRACE}", "/ui/traces?root_only=false",
            "/ui/metrics?metric=hostile_depth", "/ui/alerts", f"/ui/alerts?alert={fingerprint}", "/ui/workflows",
            "/ui/workflows?name=nightly", "/ui/notifications"]


def assert_inert(tab) -> None:
    page = tab.page
    assert page.evaluate("window.pwned") is None
    assert tab.dialogs == []
    assert page.locator("img").count() == 0
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
    assert all(href.startswith("/") or href == "#" for href in hrefs), hrefs
    assert tab.errors == []


def test_hostile_data_is_shown_as_text_and_never_runs(hostile, new_tab):
    shop, fingerprint = hostile
    tab = new_tab(shop.base)
    for path in pages(fingerprint):
        page = tab.open(path)
        page.wait_for_timeout(150)
        assert_inert(tab)
    page = tab.open(f"/ui/traces?trace={TRACE}")
    expect(page.locator("#waterfall .span-row")).to_have_count(4)
    names = page.locator("#waterfall .spanname").all_inner_texts()
    assert sorted(names) == sorted(HOSTILE)
    page.locator(".spanline").first.click()
    expect(page.locator(".spandetail")).to_contain_text("payload")
    page = tab.open("/ui/logs?q=boom")
    messages = page.locator("#log-list .msg").all_text_contents()
    assert sorted(messages) == sorted(f"boom {text}" for text in HOSTILE)
    assert page.locator("#log-list mark").all_inner_texts() == ["boom"] * 4
    page = tab.open(f"/ui/alerts?alert={fingerprint}")
    expect(page.locator("dl.kv")).to_contain_text(IMG)
    page = tab.open("/ui/metrics?metric=hostile_depth&by=where")
    expect(page.locator("#metric-chart")).to_contain_text(SCRIPT)
    assert "49" not in page.locator("main").inner_text()
    page = tab.open("/ui/workflows?name=nightly")
    run = page.locator("#executions a").first
    run.click()
    expect(page.locator("#gantt")).to_contain_text("load")
    expect(page.locator("main")).to_contain_text(SCRIPT)
    assert_inert(tab)
