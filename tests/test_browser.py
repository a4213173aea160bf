"""Open the timeline page and the graph page in headless Chromium (Debian's, driven by Playwright).

Checks: no console errors, chart and list visible, a screenshot in ``test-artifacts/``, and note
text carrying ``<script>`` / ``<img onerror>`` renders as text without running.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from queries.render.html import GraphEdge, GraphNode, graph_html, timeline_html
from queries.timeline import MetaphorRef, Occurrence, build_timeline

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
INJECTED = (
    'Мост между мирами <script>window.__pwned = 1; document.title = "pwned"</script>'
    ' <img src="x" onerror="window.__pwned = 2; document.title = \'pwned\'">'
)


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


def open_page(browser: object, path: Path):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1100, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


def evil_timeline():
    occs = [
        Occurrence("u1", "c1", "Nexus/a.md", "Мосты <b>и</b> миры", "user", "2025-01-10T10:00:00", INJECTED),
        Occurrence("a1", "c1", "Nexus/a.md", "Мосты <b>и</b> миры", "assistant", "2025-01-10T10:05:00",
                   "Метафора служит мостом между мирами человека и машины."),
        Occurrence("u2", "c2", "Nexus/C# tips.md", "C# tips", "user", "2025-03-02T10:00:00",
                   "Хороший интерфейс — мост между мирами пользователя и кода."),
    ]
    return build_timeline(MetaphorRef("m2", "мост между мирами", ("мост между мирами",)), occs)


def test_timeline_page_in_chromium(browser: object, tmp_path: Path) -> None:
    html = tmp_path / "timeline.html"
    html.write_text(timeline_html(evil_timeline(), vault_name="vault"), encoding="utf-8")
    page, errors, requests = open_page(browser, html)
    try:
        assert page.title() == "мост между мирами — tropegraph timeline"
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("#chart").is_visible()
        assert page.locator("#chart rect.bar").count() == 3
        rows = page.locator("#occurrences tr.occurrence")
        assert rows.count() == 3
        assert rows.first.is_visible()
        assert "<script>window.__pwned = 1;" in rows.first.inner_text()  # shown as text
        assert page.locator("#occurrences img").count() == 0
        assert "Мосты <b>и</b> миры" in rows.first.inner_text()
        # the image is marked where a variant stands («мостом между мирами» is no variant here)
        assert page.locator("#occurrences mark").all_inner_texts() == ["Мост между мирами", "мост между мирами"]
        lines = page.eval_on_selector_all("#periods td.period", """els => els.map(e => {
            const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; })""")
        assert lines and set(lines) == {1}  # "2025-01" never wraps at its hyphen
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "timeline.png"), full_page=True)
        assert errors == []
        assert all(url.startswith("file://") for url in requests)
    finally:
        page.close()


def test_graph_page_in_chromium(browser: object, tmp_path: Path) -> None:
    nodes = [
        GraphNode("m1", "карта смысла", 9, 5, 4, "карта смысла.md"),
        GraphNode("m2", INJECTED, 7, 4, 3),
        GraphNode("m3", "структура тишины", 4, 3, 1),
    ]
    html = tmp_path / "graph.html"
    html.write_text(graph_html(nodes, [GraphEdge("m1", "m2", 3), GraphEdge("m2", "m3", 1)]), encoding="utf-8")
    page, errors, requests = open_page(browser, html)
    try:
        assert page.title() == "Metaphor graph"
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.get_attribute("body", "data-ready") == "1"  # our own pinned script did run
        assert page.locator("#graph").is_visible()
        assert page.locator("#graph .node").count() == 3
        assert page.locator("#graph line.edge").count() == 2
        page.locator("#graph .node").first.hover()
        assert "карта смысла" in page.locator("#info").inner_text()
        assert page.locator("#graph line.edge.hi").count() == 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "graph.png"), full_page=True)
        assert errors == []
        assert all(url.startswith("file://") for url in requests)
    finally:
        page.close()


@pytest.mark.slow
def test_pages_made_by_the_cli_from_the_planted_vault(browser: object, planted_source: tuple,
                                                      tmp_path_factory: pytest.TempPathFactory,
                                                      tmp_path: Path) -> None:
    """The real thing: `timeline --html` and `report`'s graph.html from an indexed vault whose note
    was edited to carry a script."""
    from click.testing import CliRunner
    from test_timeline_cli import build_planted_index

    from interfaces.cli import cli

    src, truth = planted_source
    idx = build_planted_index(planted_source, tmp_path_factory)
    vault = tmp_path / "vault"
    shutil.copytree(src, vault)
    label = truth["images"]["I1"]["canonical"]
    page_file = tmp_path / "timeline.html"
    runner = CliRunner()
    res = runner.invoke(cli, ["timeline", label, "--html", str(page_file), "--vault", str(vault),
                              "--index-dir", str(idx)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["report", "--top", "3", "--no-drift", "--vault", str(vault), "--index-dir", str(idx)])
    assert res.exit_code == 0, res.output

    page, errors, requests = open_page(browser, page_file)
    try:
        assert page.locator("#chart").is_visible()
        assert page.locator("#occurrences tr.occurrence").count() == len(
            [o for o in truth["occurrences"] if o["kind"] == "image" and o["id"] == "I1"])
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "planted-timeline.png"), full_page=True)
        assert errors == []
        assert all(url.startswith("file://") for url in requests)
    finally:
        page.close()

    page, errors, requests = open_page(browser, vault / "Tropegraph" / "graph.html")
    try:
        assert page.locator("#graph").is_visible()
        assert page.locator("#graph .node").count() >= 5
        assert page.get_attribute("body", "data-ready") == "1"
        page.screenshot(path=str(ARTIFACTS / "planted-graph.png"), full_page=True)
        assert errors == []
        assert all(url.startswith("file://") for url in requests)
    finally:
        page.close()


SCRIPT_IN_NOTE = "<script>__pwned=1</script> <img src=x onerror='__pwned=2'>"


@pytest.mark.slow
def test_script_written_in_a_note_renders_as_text(browser: object, planted_source: tuple, tmp_path: Path) -> None:
    """A vault note whose title carries <script> and <img onerror> (a planted image inside): indexed,
    rendered by `timeline --html` and `--note`, opened in Chromium — nothing runs, the text shows."""
    from click.testing import CliRunner

    from interfaces.cli import cli

    src, truth = planted_source
    convs = {c["index"]: c for c in truth["conversations"]}
    uses = sorted((o for o in truth["occurrences"] if o["kind"] == "image" and o["id"] == "I1"),
                  key=lambda o: o["time"])
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    for o in uses:
        rel = convs[o["conv"]]["path"]
        (vault / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, vault / rel)
    # the conversation title (frontmatter alias and "# Title:" line) carries the markup
    first = vault / convs[uses[0]["conv"]]["path"]
    title = convs[uses[0]["conv"]]["title"]
    text = first.read_text(encoding="utf-8")
    assert f"# Title: {title}" in text
    evil_title = f"{title} {SCRIPT_IN_NOTE}"
    text = text.replace(f"# Title: {title}", f"# Title: {evil_title}").replace(f'aliases: "{title}"', f'aliases: "{evil_title}"')
    first.write_text(text, encoding="utf-8")

    idx = tmp_path / "index"
    runner = CliRunner()
    res = runner.invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(idx), "--engine", "fake"])
    assert res.exit_code == 0, res.output
    page_file = tmp_path / "timeline.html"
    label = truth["images"]["I1"]["canonical"]
    res = runner.invoke(cli, ["timeline", label, "--html", str(page_file), "--note", "--json",
                              "--vault", str(vault), "--index-dir", str(idx)])
    assert res.exit_code == 0, res.output
    import json

    occurrences = json.loads(res.stdout)["occurrences"]
    assert occurrences[0]["title"] == evil_title
    note = (vault / "Tropegraph" / f"{label}.md").read_text(encoding="utf-8")
    assert "<script>" not in note and "<img" not in note
    assert "‹script›__pwned=1‹/script›" in note  # the title, defused, in a link alias

    page, errors, requests = open_page(browser, page_file)
    try:
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("#occurrences img, #periods img").count() == 0
        assert SCRIPT_IN_NOTE in page.locator("#occurrences").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "injected-timeline.png"), full_page=True)
        assert errors == []
        assert all(url.startswith("file://") for url in requests)
    finally:
        page.close()
