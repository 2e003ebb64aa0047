"""The dashboard's routes on `tocsin serve`, over a real socket: the shell and assets are public and carry a
strict CSP, only shipped files are served, the data stays behind the API's keys, and the JavaScript that
ships stays under its 250 KB gzipped budget."""

from __future__ import annotations

import gzip
import re
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
import tocsin_api
import tocsin_dashboard
import tocsin_sqlite
from tocsin_api.testing import LiveServer
from tocsin_dashboard.routes import PAGES

from tocsin.testing import make_monitor

STATIC = files("tocsin_dashboard") / "static"
KEYS = {"server": {"api_keys": [{"name": "viewer", "key": "view-0123456789abcdef", "scopes": ["read"]}]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("routes") / "tocsin.db"
    monitor = make_monitor(tocsin_api, tocsin_sqlite, tocsin_dashboard,
                           config={**KEYS, "storage": {"backend": "sqlite", "path": str(path)}})
    live = LiveServer(monitor).start()
    yield live
    live.stop()


def shipped(suffix: str) -> list[str]:
    found: list[str] = []

    def walk(folder, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(suffix):
                found.append(prefix + entry.name)

    walk(STATIC, "")
    return sorted(found)


@pytest.mark.parametrize("path", ["/", "/ui", *[f"/ui/{page}" for page in PAGES]])
def test_every_page_url_serves_the_shell_without_a_key_and_with_a_strict_csp(server, path):
    response = httpx.get(server.url(path), timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "default-src 'none'" in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)", response.text)  # no inline script
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", response.text)  # no inline event handler
    assert response.headers["x-frame-options"] == "DENY"


def test_the_shell_holds_no_data_and_the_data_needs_a_key(server):
    assert httpx.get(server.url("/api/v1/alerts"), timeout=10).status_code == 401
    shell = httpx.get(server.url("/"), timeout=10).text
    assert "/ui/static/app.js" in shell and "api/v1" not in shell


def test_assets_are_served_with_their_types_and_only_shipped_files_are(server):
    script = httpx.get(server.url("/ui/static/app.js"), timeout=10)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "script-src 'self'" in script.headers["content-security-policy"]
    style = httpx.get(server.url("/ui/static/vendor/uPlot.min.css"), timeout=10)
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert httpx.get(server.url("/ui/static/vendor/uPlot.LICENSE"), timeout=10).status_code == 200
    for bad in ["/ui/static/nope.js", "/ui/static/../__init__.py", "/ui/static/%2e%2e/routes.py", "/ui/static/"]:
        assert httpx.get(server.url(bad), timeout=10).status_code == 404, bad
    unknown = httpx.get(server.url("/ui/nowhere"), timeout=10)
    assert unknown.status_code == 404 and "nowhere" in unknown.json()["detail"]


def test_every_local_script_and_style_the_pages_import_ships():
    for name in shipped(".js"):
        if name.startswith("vendor/"):
            continue
        text = (STATIC / name).read_text()
        for target in re.findall(r'^import .* from "(\.[^"]+)";$', text, flags=re.M):
            base = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
            resolved = httpx.URL("http://x/" + base).join(target).path.lstrip("/")
            assert (STATIC / resolved).is_file(), f"{name} imports {target}"
    shell = (STATIC / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="/ui/static/([^"]+)"', shell):
        assert (STATIC / ref).is_file(), ref


def test_no_script_builds_markup_from_strings():
    for name in shipped(".js"):
        if name.startswith("vendor/"):
            continue
        text = (STATIC / name).read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, f"{name} uses {sink}"


def test_the_javascript_shipped_is_at_most_250_kb_gzipped():
    total = sum(len(gzip.compress((STATIC / name).read_bytes(), 9)) for name in shipped(".js"))
    assert shipped(".js") and total <= 250 * 1024, total


def test_the_plugin_mounts_through_register_routes():
    handlers = tocsin_dashboard.register_routes(monitor=None)
    paths = {path for handler in handlers for path in handler.paths}
    assert {"/", "/ui/{page:str}", "/ui/static/{path:path}"} <= paths
    assert all(handler.opt.get("scope", "read") is None for handler in handlers)


def test_every_page_has_a_screenshot_in_the_docs_and_the_docs_show_it():
    docs = Path(__file__).resolve().parents[3] / "docs"
    page = (docs / "dashboard.md").read_text()
    for name in PAGES:
        shot = docs / "dashboard" / f"{name}.png"
        assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
        assert f"](dashboard/{name}.png)" in page, name


def test_the_plugin_readme_says_what_it_adds_how_to_enable_it_and_its_keys():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert len(readme.splitlines()) > 15
    assert "## What it adds" in readme and "## How to enable it" in readme and "## Config keys" in readme
