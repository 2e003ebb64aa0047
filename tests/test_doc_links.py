"""Every relative link in README.md and docs/*.md reaches a file of the repository and, with a `#fragment`, a
heading of that page (GitHub's anchors: lowercase, punctuation dropped, spaces as hyphens)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (a repeated heading's second anchor ends in -1, …)."""
    found: set[str] = set()
    for line in _FENCE.sub("", page.read_text()).splitlines():
        if not line.startswith("#"):
            continue
        text = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text.replace("`", "")).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in found:
            n += 1
            anchor = f"{slug}-{n}"
        found.add(anchor)
    return found


def links(page: Path) -> list[str]:
    """The page's relative link targets, code blocks left out."""
    return [target for target in _LINK.findall(_FENCE.sub("", page.read_text()))
            if not re.match(r"[a-z]+:", target)]


def test_the_anchor_rule_matches_github():
    page = ROOT / "docs" / "performance.md"
    assert "search-and-ingest-at-1m-records-issue-13" in anchors(page)
    assert "http-api--post-apiv1logs-and-websocket-fan-out" in anchors(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_reach_a_file_and_a_heading(page):
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked}")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    assert broken == []
