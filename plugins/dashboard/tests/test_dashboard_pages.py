"""The dashboard in Debian Chromium against a live seeded server: every page draws from the API without a
console error, alerts appear live, acknowledging from the page reaches storage (and a read-only key gets a
clear 403), a 50-span trace's waterfall shows every span, log search highlights its term, the live tail
brings new records, and the live/paused switch works."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PAGES = ["/", "/ui/metrics", "/ui/traces", "/ui/logs", "/ui/alerts", "/ui/workflows", "/ui/notifications",
         f"/ui/traces?trace={TRACE_ID}", "/ui/workflows?name=nightly-etl",
         "/ui/metrics?metric=http_request_seconds&agg=p99&by=route"]
KEYS = {"server": {"api_keys": [{"name": "viewer", "key": "view-0123456789abcdef", "scopes": ["read"]}]}}


@pytest.mark.parametrize("path", PAGES)
def test_each_page_loads_without_a_console_error(tab, path: str):
    page = tab.open(path)
    assert page.locator("h1").first.inner_text()
    assert not page.locator(".problem").count(), page.locator(".problem").all_inner_texts()
    page.wait_for_timeout(200)
    assert tab.errors == []


def test_a_new_alert_appears_on_the_overview_within_two_seconds_without_a_reload(tab, shop):
    page = tab.open("/")
    page.wait_for_selector('body[data-topics~="alerts"]')  # the server confirmed the subscription
    page.evaluate("window.notReloaded = true")
    assert 'queue="jobs"' not in page.locator("#active-alerts").inner_text()
    shop.fire(jobs=500)
    expect(page.locator("#active-alerts")).to_contain_text('queue="jobs"', timeout=2000)
    assert page.evaluate("window.notReloaded") is True
    assert tab.errors == []


def test_acknowledging_from_the_page_changes_the_alert_in_storage(tab, shop):
    fingerprint = shop.fire(ackme=300)["ackme"]
    page = tab.open("/ui/alerts")
    page.locator(f'button[data-do="acknowledge"][data-fingerprint="{fingerprint}"]').click()
    form = page.locator('form[data-action="acknowledge"]')
    form.locator('input[name="comment"]').fill("restarting the worker")
    form.locator('button[type="submit"]').click()
    expect(form.locator(".ok")).to_contain_text("acknowledged")
    alert = shop.get(f"/api/v1/alerts/{fingerprint}")["alert"]
    assert alert["handling"] == "acknowledged"
    assert alert["ack_comment"] == "restarting the worker" and alert["acknowledged_by"] == "anonymous"
    stored = shop.server.call(shop.monitor.storage.get_alert(fingerprint))
    assert stored.handling == "acknowledged"
    expect(page.locator('a[data-view="acknowledged"]')).to_contain_text("acknowledged (1)")


def test_a_fifty_span_trace_shows_every_span_running_ones_and_a_spans_logs(tab):
    page = tab.open(f"/ui/traces?trace={TRACE_ID}")
    rows = page.locator("#waterfall .span-row")
    expect(rows).to_have_count(50)
    names = rows.locator(".spanname").all_inner_texts()
    assert len(set(names)) == 50 and "GET /checkout" in names and "query 6.5" in names
    assert page.locator("#waterfall .span-row.is-running").count() == 1
    assert page.locator("#waterfall .span-row.is-running .spanname").inner_text() == "query 6.5"
    failing = page.locator(f'.span-row[data-span="{1032:016x}"]')
    failing.locator(".spanline").click()
    expect(failing.locator(".spandetail")).to_contain_text("card declined")
    expect(failing.locator(".spandetail")).to_contain_text("exception")
    logged = page.locator(f'.span-row[data-span="{1034:016x}"]')
    logged.locator(".spanline").click()
    expect(logged.locator(".spandetail")).to_contain_text("Logs (8)")
    expect(logged.locator(".spandetail .logrow").first).to_contain_text("connection refused")
    assert tab.errors == []


def test_log_search_highlights_its_term(tab):
    page = tab.open("/ui/logs?q=refused")
    rows = page.locator("#log-list .logrow")
    expect(rows).to_have_count(8)
    marks = page.locator("#log-list mark").all_inner_texts()
    assert len(marks) == 8 and {mark.lower() for mark in marks} == {"refused"}
    assert all("refused" in text for text in rows.locator(".msg").all_inner_texts())
    expect(page.locator("#log-summary")).to_contain_text("8 matching records")


def test_the_live_tail_adds_new_records_and_pausing_stops_it(tab, shop):
    page = tab.open("/ui/logs?q=tailword")
    page.wait_for_selector('body[data-topics~="logs"]')
    record = {"time_ns": time.time_ns(), "level": "info", "message": "tailword arrived", "service": "shop"}
    with httpx.Client(base_url=shop.base, timeout=10) as http:
        assert http.post("/api/v1/logs", json=[record]).status_code == 202
        expect(page.locator("#log-list .logrow")).to_have_count(1, timeout=5000)
        expect(page.locator("#log-list mark")).to_have_text("tailword")
        page.locator("#live").click()
        expect(page.locator("#live")).to_have_text("❚❚ paused")
        assert page.locator("body").get_attribute("data-live") == "paused"
        assert http.post("/api/v1/logs", json=[{**record, "time_ns": time.time_ns(), "message": "tailword again"}]
                         ).status_code == 202
        page.wait_for_timeout(1500)
        assert page.locator("#log-list .logrow").count() == 1
        page.locator("#live").click()  # resuming replays what came meanwhile, from the cursor
        expect(page.locator("#live")).to_have_text("● live")
        expect(page.locator("#log-list .logrow")).to_have_count(2, timeout=5000)
    assert tab.errors == []


def test_with_keys_the_page_asks_for_one_and_shows_a_403_clearly(make_shop, new_tab):
    keyed = make_shop(KEYS)
    fingerprint = keyed.fire(locked=400)["locked"]
    page = new_tab(keyed.base).page
    page.goto(keyed.base + "/ui/alerts")
    page.locator('#banner input[name="key"]').fill("view-0123456789abcdef")
    page.locator('#banner button[type="submit"]').click()
    page.locator(f'button[data-do="acknowledge"][data-fingerprint="{fingerprint}"]').click()
    page.locator('form[data-action="acknowledge"] button[type="submit"]').click()
    problem = page.locator('form[data-action="acknowledge"] .problem.p-403')
    expect(problem).to_contain_text("Forbidden (403)")
    expect(problem).to_contain_text("lacks the 'write' scope")
    assert page.evaluate("sessionStorage.getItem('tocsin.apiKey')") == "view-0123456789abcdef"
    expect(page.locator("#live")).to_have_text("● live")
    headers = {"Authorization": "Bearer view-0123456789abcdef"}
    alert = httpx.get(keyed.server.url(f"/api/v1/alerts/{fingerprint}"), headers=headers, timeout=10).json()["alert"]
    assert alert["handling"] == "active"


def test_test_send_preview_and_a_deliverys_attempts_from_the_notifications_page(tab, shop):
    page = tab.open("/ui/notifications")
    channel = page.locator('.channel[data-channel="ops"]')
    channel.locator('button[data-do="test"]').click()
    expect(channel.locator(".outcome")).to_contain_text("test sent")
    channel.locator('button[data-do="preview"]').click()
    expect(channel.locator(".outcome pre").first).to_contain_text("[FIRING] queue-deep")
    expect(page.locator("#deliveries")).to_contain_text("queue-deep")
    page.locator("#deliveries a", has_text="attempts").first.click()
    expect(page.locator("main")).to_contain_text("Delivery ")
    expect(page.locator("main table").first).to_contain_text("sent")
    assert "delivery=" in page.url
    assert tab.errors == []


def test_silencing_from_the_alerts_page_creates_the_silence(tab, shop):
    fingerprint = shop.fire(quiet=900)["quiet"]
    page = tab.open("/ui/alerts")
    page.locator(f'button[data-do="silence"][data-fingerprint="{fingerprint}"]').click()
    form = page.locator('form[data-action="silence"]')
    form.locator('input[name="duration"]').fill("1h")
    form.locator('input[name="comment"]').fill("maintenance")
    form.locator('button[type="submit"]').click()
    expect(form.locator(".ok")).to_contain_text("is active")
    silences = shop.get("/api/v1/silences", state="active")
    assert [s["comment"] for s in silences] == ["maintenance"]
    assert {"label": "queue", "op": "=", "value": "quiet"} in silences[0]["matchers"]


def test_trace_search_by_service_operation_and_status(tab):
    page = tab.open("/ui/traces?root_only=false&service=payments")
    expect(page.locator('select[name="service"] option[value="shop"]')).to_have_count(1)
    expect(page.locator('select[name="name"] option[value="call 3"]')).to_have_count(1)
    operations = page.locator("#trace-results td:nth-child(3)").all_inner_texts()
    assert sorted(operations) == ["call 1", "call 3", "call 5"]
    page = tab.open("/ui/traces?root_only=false&status=error&service=shop")
    assert page.locator("#trace-results td:nth-child(3)").all_inner_texts() == ["query 3.2"]
    page.locator("#trace-results a", has_text="query 3.2").click()
    expect(page.locator("#waterfall .span-row")).to_have_count(50)
    expect(page.locator(f'.span-row[data-span="{1032:016x}"] .spandetail')).to_contain_text("card declined")
    assert tab.errors == []


def test_health_cards_show_status_and_dependencies(tab):
    page = tab.open("/")
    api = page.locator('.hcard[data-component="api"]')
    expect(api).to_contain_text("healthy")
    expect(api).to_contain_text("depends on db")
    expect(page.locator('.hcard[data-component="db"]')).to_contain_text("needed by api")


def test_a_failed_run_shows_its_steps_as_a_gantt_bar_with_the_traceback(tab, shop):
    failed = shop.get("/api/v1/workflows/executions", status="failed")["items"][0]
    page = tab.open(f"/ui/workflows?execution={failed['id']}")
    expect(page.locator("#gantt .gantt-row")).to_have_count(1)
    expect(page.locator('#gantt .gantt-row[data-step="extract"] .bar.ws-failed')).to_have_count(1)
    expect(page.locator("pre.traceback")).to_contain_text("ValueError: disk full")
    page.locator("main a", has_text="trace").first.click()
    expect(page.locator("#waterfall .span-row")).to_have_count(2)
    assert tab.errors == []


def test_a_log_record_links_to_its_span_in_the_trace(tab):
    page = tab.open("/ui/logs?q=refused")
    page.locator("#log-list .logrow a.tolink", has_text="trace").first.click()
    expect(page.locator(f'.span-row[data-span="{1034:016x}"] .spandetail')).to_contain_text("Logs (8)")
    assert "/ui/traces?trace=" in page.url


def test_dragging_across_a_chart_zooms_into_the_url(tab):
    page = tab.open("/ui/metrics?metric=http_requests_total&agg=rate&range=1h")
    over = page.locator("#metric-chart .u-over")
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 20, steps=5)
    page.mouse.up()
    expect(page.locator("main")).to_contain_text("reset zoom")
    assert "start=" in page.url and "end=" in page.url
    page.locator("a", has_text="reset zoom").click()
    expect(page.locator("main")).to_contain_text("Drag across the chart to zoom.")
    assert tab.errors == []


def test_after_a_dropped_socket_the_page_reconnects_with_its_cursor_and_catches_up(tab, shop):
    sockets = []

    def relay(ws) -> None:  # a pass-through, so the test can drop the connection
        ws.connect_to_server()
        sockets.append(ws)

    tab.page.route_web_socket("**/api/v1/ws*", relay)
    page = tab.open("/ui/alerts?view=all")
    page.wait_for_selector('body[data-topics~="alerts"]')
    assert len(sockets) == 1 and "since=" not in sockets[0].url
    page.evaluate("window.notReloaded = true")
    sockets[0].close(code=1012, reason="restart")
    shop.fire(dropped=700)
    expect(page.locator("#live")).to_have_text("● live", timeout=10_000)
    expect(page.locator("#alert-list")).to_contain_text('queue="dropped"', timeout=5000)
    assert len(sockets) == 2 and "since=v1." in sockets[1].url
    assert page.evaluate("window.notReloaded") is True
