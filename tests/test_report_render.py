"""Renderers (HTML, Obsidian Markdown, charts) and the atomic, write-only-when-changed report writer."""
from __future__ import annotations

import os
import re
from pathlib import Path

import frontmatter
import pytest

from queries.render.chart import chart_svg, series, write_png
from queries.render.html import GraphEdge, GraphNode, graph_html, timeline_html
from queries.render.links import md_text, note_link, safe_file_name
from queries.render.markdown import index_note, timeline_data, timeline_note
from queries.render.text import render_text
from queries.reports import (
    ReportDirError,
    is_report_note,
    note_names,
    report_root,
    write_files,
    write_if_changed,
)
from queries.timeline import MetaphorRef, Occurrence, build_timeline

EVIL = 'Карта смысла <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> | #tag [[link]]'


def make_timeline(note: str = "Nexus/chats/Карта.md"):
    occs = [
        Occurrence("u1", "c1", note, "Title | one", "assistant", "2025-01-10T10:00:00", EVIL),
        Occurrence("u2", "c2", "Nexus/chats/C# tips [draft].md", "C# tips", "user", "2025-03-02T10:00:00",
                   "Я хочу составить карту смысла для своих записей."),
        Occurrence("u3", "c2", "Nexus/chats/C# tips [draft].md", "C# tips", "user", "2025-03-05T10:00:00",
                   "Дневник становится картой смысла."),
    ]
    ref = MetaphorRef("m1", "карта смысла", ("карта смысла", "карту смысла"))
    return build_timeline(ref, occs, cooccurring={"c2": [MetaphorRef("m2", "мост | между <b>мирами</b>")]})


# --- links ---------------------------------------------------------------------------------------


def test_wikilink_for_plain_paths_and_escaped_pipe_in_tables() -> None:
    assert note_link("Nexus/a b.md", "A title") == "[[Nexus/a b|A title]]"
    assert note_link("Nexus/a b.md", "A title", in_table=True) == "[[Nexus/a b\\|A title]]"
    assert note_link("x.md", "a|b [c]") == "[[x|a b c]]"
    assert note_link("x.md", "<script>x</script>") == "[[x|‹script›x‹/script›]]"
    assert note_link("x#.md", "<b>") == "[\\<b\\>](x%23.md)"


@pytest.mark.parametrize("name", ["C# tips.md", "x^y.md", "a [b].md", "p|q.md"])
def test_percent_encoded_markdown_link_when_name_breaks_wikilinks(name: str) -> None:
    link = note_link(f"Nexus/2025/{name}", "T [1]")
    m = re.fullmatch(r"\[(.*)\]\((.*)\)", link)
    assert m, link
    assert m.group(1) == "T \\[1\\]"
    assert not re.search(r"[#^\[\]| ]", m.group(2))
    from urllib.parse import unquote

    assert unquote(m.group(2)) == f"Nexus/2025/{name}"


def test_md_text_is_inert() -> None:
    out = md_text(EVIL)
    assert "<script>" not in out and "[[" not in out and " #tag" not in out
    assert "\\|" in out


def test_safe_file_name() -> None:
    assert safe_file_name('a/b: c#d^e[f]|g?"') == "a b c d e f g"
    assert safe_file_name("...") == "metaphor"


# --- terminal, HTML, chart -----------------------------------------------------------------------


def test_text_view_lists_every_occurrence_in_order() -> None:
    tl = make_timeline()
    out = render_text(tl)
    assert "first use: 2025-01-10 by assistant" in out
    assert "uptake: user on 2025-03-02, 51 days later" in out
    assert out.index("2025-01-10  assistant") < out.index("2025-03-02  user") < out.index("2025-03-05  user")


def test_html_escapes_every_piece_of_note_text() -> None:
    page = timeline_html(make_timeline(), vault_name="My vault")
    assert "<script>window" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "<b>мирами</b>" not in page
    assert "script-src 'none'" in page  # the CSP forbids scripts even if escaping failed
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert "https://" not in page
    assert 'href="obsidian://open?vault=My%20vault&amp;file=Nexus%2Fchats%2F%D0%9A' in page
    assert page.count('class="occurrence"') == 3


def test_chart_fills_empty_periods() -> None:
    tl = make_timeline()
    s = series(tl)
    assert s.periods == ["2025-01", "2025-02", "2025-03"]
    assert (s.user, s.assistant) == ([0, 0, 2], [1, 0, 0])
    svg = chart_svg(tl)
    assert svg.count('class="bar user"') == 1 and svg.count('class="bar assistant"') == 1


def test_png_chart(tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    write_png(make_timeline(), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000


def test_graph_page_escapes_labels_and_pins_its_script() -> None:
    nodes = [GraphNode("m1", "<script>window.__pwned=3</script>", 10, 6, 4, "a.md"), GraphNode("m2", "мост", 3, 0, 3)]
    page = graph_html(nodes, [GraphEdge("m1", "m2", 2)])
    assert "<script>window" not in page
    assert page.count("<script>") == 1
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", page)
    assert page == graph_html(nodes, [GraphEdge("m1", "m2", 2)])  # deterministic layout


# --- Obsidian notes ------------------------------------------------------------------------------


def test_note_frontmatter_has_report_marker_and_dataview_fields() -> None:
    tl = make_timeline()
    post = frontmatter.loads(timeline_note(tl))
    assert post["tropegraph"] == "report"
    assert post["metaphor_id"] == "m1"
    assert post["uses"] == 3 and post["user_uses"] == 2 and post["assistant_uses"] == 1
    assert post["introduced_by"] == "assistant"
    assert post["uptake_lag_days"] == pytest.approx(51.0)
    assert post.metadata == timeline_data(tl)


def test_note_body_has_mermaid_drift_table_and_safe_links() -> None:
    body = timeline_note(make_timeline())
    assert "```mermaid\nxychart-beta" in body
    assert 'x-axis ["2025-01", "2025-02", "2025-03"]' in body
    assert "bar [1, 0, 2]" in body
    assert "[[Nexus/chats/Карта|Title one]]" in body
    # a path no wikilink can reach: a percent-encoded Markdown link, its text escaped like all note text
    assert "[C\\# tips](Nexus/chats/C%23%20tips%20%5Bdraft%5D.md)" in body
    assert not re.search(r"(?<!\\)<", body)  # every '<' from note text is backslash-escaped
    table = [line for line in body.splitlines() if line.startswith("| 2025")]
    assert len(table) == 2
    for row in table:  # every cell separator is a real one: escaped pipes stay inside cells
        assert len(re.findall(r"(?<!\\)\|", row)) == 10
    assert "мост \\| между \\<b\\>мирами\\</b\\> (1)" in body


def test_index_note() -> None:
    tl = make_timeline()
    rows = [timeline_data(tl), {**timeline_data(tl), "metaphor_id": "m9", "label": "тишина | x", "uses": 1}]
    text = index_note(rows, links={"m1": "Tropegraph/карта смысла.md"}, report_dir="Tropegraph")
    post = frontmatter.loads(text)
    assert post["tropegraph"] == "report" and post["metaphors"] == 2 and post["top"] == ["карта смысла"]
    assert "[[Tropegraph/карта смысла\\|карта смысла]]" in text
    assert "| тишина \\| x |" in text
    assert 'FROM "Tropegraph"' in text


# --- writer --------------------------------------------------------------------------------------


def test_write_if_changed_leaves_unchanged_files_alone(tmp_path: Path) -> None:
    p = tmp_path / "r" / "n.md"
    assert write_if_changed(p, "one") is True
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    assert write_if_changed(p, "one") is False
    assert p.stat().st_mtime_ns == 1_000_000_000
    assert write_if_changed(p, "two") is True
    assert p.read_text() == "two"
    assert [f.name for f in p.parent.iterdir()] == ["n.md"]  # no temporary files left


def test_write_files_never_touches_a_users_note_and_prunes_only_reports(tmp_path: Path) -> None:
    vault = tmp_path
    root, rel = report_root(vault, None)
    root.mkdir()
    (root / "mine.md").write_text("# my own note\n")
    (root / "old.md").write_text("---\ntropegraph: report\nmetaphor_id: x\n---\nold\n")
    res = write_files(vault, rel, {"a.md": "---\ntropegraph: report\n---\nA\n"}, prune=True)
    assert res.written == ["Tropegraph/a.md"] and res.removed == ["Tropegraph/old.md"]
    assert (root / "mine.md").exists()
    with pytest.raises(ReportDirError, match=r"mine\.md exists and is not a tropegraph report"):
        write_files(vault, rel, {"mine.md": "x"})
    assert is_report_note(root / "a.md") and not is_report_note(root / "mine.md")


@pytest.mark.parametrize("bad", ["../out", "/abs", "a/../../b", ""])
def test_report_dir_must_stay_inside_the_vault(tmp_path: Path, bad: str) -> None:
    if bad == "":
        assert report_root(tmp_path, bad)[1] == "Tropegraph"
        return
    with pytest.raises(ReportDirError, match="must be a folder inside the vault"):
        report_root(tmp_path, bad)


def test_note_names_are_unique_and_stable() -> None:
    names = note_names([("m1", "карта смысла"), ("m2", "карта: смысла"), ("m3", "Metaphors")])
    assert names == {"m1": "карта смысла.md", "m2": "карта смысла (m2).md", "m3": "Metaphors (m3).md"}


@pytest.mark.slow
def test_graph_layout_is_identical_whatever_the_thread_settings(tmp_path: Path) -> None:
    """graph.html must not change between two reports of the same index (sync tools stay quiet),
    even when another part of the run (the embedder) changes numpy's thread pools."""
    import subprocess
    import sys

    script = (
        "import sys, itertools\n"
        "from queries.render.html import GraphNode, GraphEdge, graph_html\n"
        "nodes = [GraphNode(f'm{i}', f'метафора {i}', 1 + (i * 7) % 23, i % 3, 1) for i in range(60)]\n"
        "edges = [GraphEdge(f'm{a}', f'm{b}', 1 + (a + b) % 4) for a, b in itertools.combinations(range(60), 2)"
        " if (a * b) % 7 == 1 or b == a + 1]\n"
        "sys.stdout.write(graph_html(nodes, edges))\n"
    )
    outs = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        outs.append(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                   check=True, cwd=tmp_path).stdout)
    assert outs[0] == outs[1]
    assert outs[0].count('class="node"') == 60
