"""``tropegraph serve`` in real headless Chromium (Debian's, driven by Playwright), on the demo vault
plus one planted note (``serve_helpers``): every page loads without console errors, search finds the
planted needle as you type, the timeline names the planted first use, the graph draws its top images
with labels that overlap nothing, markup in a note stays text, and curation from the page writes
``tropegraph.toml`` exactly as the CLI does. Screenshots go to ``test-artifacts/serve-*.png``; with
``TROPEGRAPH_README_SHOTS=1`` the README's screenshots in ``docs/images/`` are refreshed too."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import copy_served_demo
from serve_helpers import PLANTED_FIRST, PLANTED_TITLE, running_server
from test_browser import ARGS, ARTIFACTS, CHROMIUM

from interfaces.cli import cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]
DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
TOP = 10  # graph.js emphasises and always labels this many


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, but .ci/run installs it: the CI set-up is broken")
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def site(served_demo: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    vault, index = copy_served_demo(served_demo, tmp_path_factory.mktemp("serve-browser"))
    with running_server(vault, index) as (url, explorer):
        yield url, explorer, vault, index


class Page:
    """A Chromium tab that records console errors, failed requests and every URL it asked for."""

    def __init__(self, browser: object, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.base = url

    def goto(self, path: str, ready: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_selector(ready, timeout=60_000)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"serve-{name}.png"), full_page=True)
        if os.environ.get("TROPEGRAPH_README_SHOTS"):
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(DOCS_IMAGES / f"serve-{name}.jpg"), type="jpeg", quality=70,
                                 clip={"x": 0, "y": 0, "width": 1200, "height": 760})

    def check_clean(self) -> None:
        assert self.errors == []
        assert self.page.evaluate("typeof window.__pwned") == "undefined"
        local = [u for u in self.requests if not u.startswith((self.base + "/", "data:"))]
        assert local == []  # nothing fetched from anywhere else

    def wait_for(self, js: str, timeout: float = 30.0) -> None:
        """Poll ``js`` (a function source) until truthy. Playwright's wait_for_function compiles its
        predicate with eval, which our Content-Security-Policy rightly refuses; evaluate does not."""
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(js):
            assert time.monotonic() < deadline, f"timed out waiting for {js}"
            self.page.wait_for_timeout(50)

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def tab(browser: object, site: tuple) -> Iterator[Page]:
    p = Page(browser, site[0])
    try:
        yield p
    finally:
        p.close()


def test_search_page_finds_the_needle_as_you_type(tab: Page) -> None:
    tab.goto("/search", "#q")
    tab.page.locator("#q").press_sequentially("янтарный маяк", delay=30)  # typed, no Enter
    tab.page.wait_for_selector("#results li.hit", timeout=30_000)
    first = tab.page.locator("#results li.hit").first
    title = first.locator("a.title")
    assert title.inner_text() == PLANTED_TITLE  # the note's markup, shown as text
    assert title.get_attribute("href").startswith("obsidian://open?vault=vault&file=Nexus%2FConversations%2F")
    marks = [m.lower() for m in first.locator(".snippet mark").all_inner_texts()]
    assert "маяк" in marks and any(m.startswith("янтарн") for m in marks)
    assert tab.page.locator("#results img, #results script").count() == 0
    # the role filter narrows the same query to the assistant's turn
    tab.page.select_option("#role", "assistant")
    tab.wait_for("() => [...document.querySelectorAll('#results .meta')].every("
                 "e => e.textContent.startsWith('assistant'))")
    metas = tab.page.locator("#results .meta").all_inner_texts()
    assert metas and all(m.startswith("assistant") for m in metas)
    tab.page.select_option("#role", "")
    tab.page.fill("#q", "карта смысла")
    tab.wait_for("() => document.querySelector('#summary').textContent.includes('карта смысла')")
    tab.shot("search")
    tab.check_clean()


def test_metaphors_page_lists_images_with_scores(tab: Page, site: tuple) -> None:
    tab.goto("/metaphors", "#metaphor-table tbody tr")
    rows = tab.page.locator("#metaphor-table tbody tr")
    labels = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())]
    api = CliRunner().invoke(cli, ["metaphors", "--limit", "500", "--json", "--vault", str(site[2]),
                                   "--index-dir", str(site[3])])
    import json

    assert labels == [m["label"] for m in json.loads(api.stdout)["metaphors"]]
    assert "карта смысла" in labels[:3]
    tab.shot("metaphors")
    # "Why?" opens the explanation of `tropegraph metaphors explain` under the row, and closes it
    first = json.loads(api.stdout)["metaphors"][0]
    ex = json.loads(CliRunner().invoke(cli, ["metaphors", "explain", first["id"], "--json", "--vault", str(site[2]),
                                             "--index-dir", str(site[3])]).stdout)
    rows.nth(0).locator("button[data-action=why]").click()
    tab.wait_for(f"() => !!document.querySelector('tr.why[data-why=\"{first['id']}\"]')")
    why = tab.page.locator("tr.why").inner_text()
    assert why.startswith("Listed: " + "; ".join(ex["reasons"]))
    assert f"mean over {len(ex['figurative']['sentences'])} distinct sentence" in why
    assert ex["figurative"]["sentences"][0]["sentence"] in why
    rows.nth(0).locator("button[data-action=why]").click()
    tab.wait_for("() => !document.querySelector('tr.why')")
    tab.check_clean()


def test_timeline_page_shows_the_first_use_and_highlights_the_image(tab: Page) -> None:
    tab.goto("/timeline?m=" + "карта смысла", "body[data-ready]")
    when, role = PLANTED_FIRST
    assert tab.page.locator("#first-use").inner_text().startswith(f"{when[:10]} by {role}")
    assert tab.page.locator("#first-role").inner_text() == role
    assert PLANTED_TITLE in tab.page.locator("#first-use a").inner_text()
    # the lag in human units, as the CLI prints it; what a use is; a listed image needs no note
    import re

    assert re.search(r"\(\d+ (min|h|days|months?) later\)", tab.page.locator("#uptake").inner_text())
    assert ("a use is one turn (a message of a conversation, or a section of a plain note) that uses the image"
            in tab.page.locator("#uses").inner_text())
    assert tab.page.locator("#match-note").is_hidden()
    first_row = tab.page.locator("#occurrences tr.occurrence").first
    assert first_row.locator("td").first.inner_text() == when[:16].replace("T", " ")
    assert "Я рисую карту смысла <script>window" in first_row.inner_text()  # the sentence's markup is text
    marks = tab.page.locator("#occurrences tr.occurrence td.sentence mark").all_inner_texts()
    assert len(marks) == tab.page.locator("#occurrences tr.occurrence").count()  # the image, in every quote
    assert all("смысл" in m.lower() or "meaning" in m.lower() for m in marks)
    assert tab.page.locator("#chart svg rect.bar").count() >= 5
    assert tab.page.locator("#chart circle.drift-point").count() == tab.page.locator("#periods tbody tr").count()
    # period labels never wrap: each is one line box (a wrapped "2025-03" would be two)
    lines = tab.page.eval_on_selector_all("#periods td.period", """els => els.map(e => {
        const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; })""")
    assert lines and set(lines) == {1}
    tab.shot("timeline")
    tab.check_clean()


def boxes_overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def circle_hits_box(c: dict, b: dict) -> bool:
    cx = min(max(c["cx"], b["x"]), b["x"] + b["width"])
    cy = min(max(c["cy"], b["y"]), b["y"] + b["height"])
    return (cx - c["cx"]) ** 2 + (cy - c["cy"]) ** 2 < (c["r"] - 0.5) ** 2


GEOMETRY = """() => {
  const labels = [...document.querySelectorAll('#graph text.label')].map(t => {
    const r = t.getBoundingClientRect();
    return {id: t.dataset.id, text: t.textContent, top: t.classList.contains('top'), x: r.x, y: r.y, width: r.width, height: r.height};
  });
  const circles = [...document.querySelectorAll('#graph g.node')].map(g => {
    const r = g.querySelector('circle').getBoundingClientRect();
    return {id: g.dataset.id, top: g.classList.contains('top'), cx: r.x + r.width / 2, cy: r.y + r.height / 2, r: r.width / 2};
  });
  return {labels, circles};
}"""


def check_graph(tab: Page, top_labels: list[str]) -> dict:
    geo = tab.page.evaluate(GEOMETRY)
    labels, circles = geo["labels"], geo["circles"]
    shown = {lab["id"]: lab for lab in labels}
    tops = [c["id"] for c in circles if c["top"]]
    assert len(tops) == min(TOP, len(top_labels))
    assert all(t in shown for t in tops)  # every top image has its label
    assert [shown[t]["text"] for t in tops] == top_labels[:len(tops)]
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            assert not boxes_overlap(a, b), (a["text"], b["text"])
        for c in circles:
            assert not circle_hits_box(c, a), (a["text"], c["id"])
    return geo


def ranked_labels(site: tuple, *extra: str) -> list[str]:
    """The metaphor list as the CLI ranks it (``--all`` adds literal phrases)."""
    import json

    res = CliRunner().invoke(cli, ["metaphors", "--limit", "500", "--json", *extra, "--vault", str(site[2]),
                                   "--index-dir", str(site[3])])
    assert res.exit_code == 0, res.output
    return [m["label"] for m in json.loads(res.stdout)["metaphors"]]


def api_graph(site: tuple, query: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{site[0]}/api/graph?{query}") as r:
        return json.load(r)


def test_graph_page_draws_the_top_images_with_labels_that_overlap_nothing(tab: Page, site: tuple) -> None:
    ranked = ranked_labels(site)
    tab.goto("/graph", "body[data-ready]")
    geo = check_graph(tab, ranked)
    assert len([c for c in geo["circles"] if c["id"].startswith("metaphor:")]) == min(40, len(ranked))
    doc = api_graph(site, "top=40")
    assert not doc["graph"]["all"]
    assert tab.page.locator("#graph line.link").count() == len(doc["links"]) > 0
    assert f"of {len(ranked)} metaphors used" in tab.page.locator("#graph-info").inner_text()
    tab.shot("graph")
    # zoom in twice: everything scales together, so labels still overlap nothing
    tab.page.click("#zoom-in")
    tab.page.click("#zoom-in")
    tab.page.wait_for_timeout(100)
    check_graph(tab, ranked)
    # hover a top image: its links light up and the panel describes it
    tab.page.locator("#graph g.node.top").first.hover()
    assert tab.page.locator("#graph line.link.hi").count() > 0
    assert "uses" in tab.page.locator("#hover-info").inner_text()
    # filter by period (the planted note alone is older than 2025) and by kind
    tab.page.select_option("#until", "2024-11")
    tab.wait_for("() => document.querySelectorAll('#graph g.node').length === 1")
    assert tab.page.locator("#graph text.label").all_text_contents() == ["карта смысла"]
    tab.page.select_option("#until", "")
    tab.page.select_option("#top", "20")
    tab.page.check("#kind-conversation")
    tab.page.wait_for_selector("#graph g.node.conversation")
    check_graph(tab, ranked)
    # literal phrases too: the --all ranking, still without overlaps, and the choice kept in the URL
    everything = ranked_labels(site, "--all")
    assert len(everything) > len(ranked)
    tab.page.check("#show-all")
    tab.wait_for("() => document.querySelectorAll('#graph g.node.metaphor').length === 20")
    check_graph(tab, everything)
    assert "all=1" in tab.page.url
    tab.check_clean()


def test_a_big_graph_keeps_labels_apart(tab: Page, site: tuple) -> None:
    tab.goto("/graph?top=300&kinds=conversation,tag&all=1", "body[data-ready]")
    assert tab.page.is_checked("#show-all")
    geo = tab.page.evaluate(GEOMETRY)
    assert len(geo["circles"]) > 60
    check_graph(tab, ranked_labels(site, "--all"))
    tab.check_clean()


def test_curation_from_the_page_writes_what_the_cli_writes(tab: Page, served_demo: tuple, tmp_path: Path) -> None:
    """Its own copies: the page curates one, the CLI the other, starting from the same index."""
    a_vault, a_index = copy_served_demo(served_demo, tmp_path / "page")
    b_vault, b_index = copy_served_demo(served_demo, tmp_path / "cli")
    with running_server(a_vault, a_index) as (url, _):
        tab.base = url
        tab.goto("/metaphors", "#metaphor-table tbody tr")
        page = tab.page
        steps: list[list[str]] = []

        def wait_done(action: str) -> None:
            page.wait_for_selector(f"body[data-curated='{action}']")
            page.evaluate("document.body.removeAttribute('data-curated')")
            page.wait_for_selector("#metaphor-table tbody tr")

        page.fill("#track-phrase", "янтарный маяк")
        page.fill("#track-aliases", "amber lighthouse, маяк из янтаря")
        page.click("#track-button")
        wait_done("track")
        steps.append(["track", "янтарный маяк", "--alias", "amber lighthouse", "--alias", "маяк из янтаря"])
        rows = page.locator("#metaphor-table tbody tr")
        last = rows.nth(rows.count() - 1)
        rid = last.get_attribute("data-id")
        last.locator("button[data-action='reject']").click()
        wait_done("reject")
        steps.append(["reject", rid])
        split_row = page.locator("#metaphor-table tbody tr:has(button[data-action='split'])").first
        sid = split_row.get_attribute("data-id")
        split_row.locator("button[data-action='split']").click()
        wait_done("split")
        steps.append(["split", sid])
        rows = page.locator("#metaphor-table tbody tr")
        n = rows.count()
        pair = [rows.nth(n - 2), rows.nth(n - 1)]
        ids = [r.get_attribute("data-id") for r in pair]
        labels = [r.locator("td").nth(1).inner_text() for r in pair]
        for r in pair:
            r.locator("input[type=checkbox]").check()
        page.click("#merge-button")
        wait_done("merge")
        steps.append(["merge", *ids])
        assert page.locator("#message").inner_text().startswith(f"Merged «{labels[0]}» + «{labels[1]}»")
        assert page.locator("#error").is_hidden()
        tab.check_clean()
    runner = CliRunner()
    for args in steps:
        res = runner.invoke(cli, ["metaphors", *args, "--vault", str(b_vault), "--index-dir", str(b_index)])
        assert res.exit_code == 0, res.output
    page_toml = (a_vault / "tropegraph.toml").read_text(encoding="utf-8")
    assert page_toml == (b_vault / "tropegraph.toml").read_text(encoding="utf-8")
    for table in ("track", "reject", "merge"):
        assert page_toml.count(f"[[{table}]]") == 1
    assert page_toml.count("[[split]]") >= 2  # one entry per lemma key of the split metaphor


def test_readme_screenshots_are_small() -> None:
    for name in ("search", "metaphors", "timeline", "graph"):
        image = DOCS_IMAGES / f"serve-{name}.jpg"
        assert image.exists(), f"{image} is missing: run the browser tests with TROPEGRAPH_README_SHOTS=1"
        assert image.stat().st_size < 250_000



def test_pages_of_a_vault_without_images_say_why(browser: object, tmp_path: Path) -> None:
    """The Metaphors and Graph pages of a vault whose notes hold no recurring image say so and why
    (the API's message, as `tropegraph metaphors` prints it), instead of an empty table or canvas."""
    vault, index = tmp_path / "vault", tmp_path / "index"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "Дневник.md").write_text("# Дневник\n\nСегодня я купил хлеб и молоко.\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(index), "--engine", "fake"])
    assert r.exit_code == 0, r.output
    said = CliRunner().invoke(cli, ["metaphors", "--vault", str(vault), "--index-dir", str(index)]).stdout
    assert said.startswith("No recurring images")
    with running_server(vault, index) as (url, _):
        tab = Page(browser, url)
        try:
            tab.goto("/metaphors", "#metaphor-table")
            tab.wait_for("() => document.querySelector('#list-note').textContent.length > 0")
            assert tab.page.locator("#list-note").inner_text().split() == said.split()
            assert tab.page.locator("#metaphor-table tbody tr").count() == 0
            tab.goto("/graph", "#graph")
            tab.wait_for("() => document.querySelector('#graph-info').textContent.length > 0")
            assert tab.page.locator("#graph-info").inner_text().split() == said.split()
            tab.check_clean()
        finally:
            tab.close()
