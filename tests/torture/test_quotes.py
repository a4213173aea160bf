"""Finding 7 (quote part): the ``>`` markers of nested blockquotes never reach passage text.

10,000-deep quotes (2.4 MB) took 358 s to index: every ``>`` was a token to embed. The index now
holds the words of a quote, not its markers — in plain notes and in chat turns alike — while a
``>`` inside a code block (a shell prompt, a diff) is content and stays.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from index_helpers import run_index

from indexer.embed import FakeEmbedder
from vault_schema.markdown import strip_quote_markers

DEEP = 10_000

TURN = """---
nexus: nexus-ai-chat-importer
plugin_version: "1.2.0"
provider: chatgpt
conversation_id: 00000000-0000-4000-8000-000000000001
create_time: 01.03.2025 at 22:13
update_time: 01.03.2025 at 22:30
---

# Title: Глубокая цитата

>[!nexus_user] **User** - 01.03.2025 at 22:13
> Смотри, что я нашёл:
{quote}
> Сад памяти.
<!-- UID: 00000000-0000-4000-8000-0000000000u1 -->
"""


def deep_lines(prefix: str = "") -> list[str]:
    """Quote lines 50 levels deeper each time, down to ``DEEP`` levels, a word pair on each."""
    return [prefix + ">" * depth + f" слово{depth}" for depth in range(50, DEEP + 1, 50)]


def test_deep_quotes_leave_only_words_in_passages(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    lines = deep_lines()
    code = "```\n> prompt kept in code\n```"
    (vault / "quotes.md").write_text("# Цитаты\n\n" + "\n".join(lines) + "\n\n" + code + "\n", encoding="utf-8")
    (vault / "chat.md").write_text(TURN.format(quote="\n".join(deep_lines("> "))), encoding="utf-8")
    size = sum(p.stat().st_size for p in vault.glob("*.md"))
    assert size > 2_000_000  # as deep and as big as the torture file

    run_index(vault, tmp_path / "ix", FakeEmbedder())
    db = sqlite3.connect(tmp_path / "ix" / "index.db")
    passages = [r[0] for r in db.execute("SELECT p.text FROM passages p ORDER BY p.id")]
    turns = [r[0] for r in db.execute("SELECT text FROM turns")]
    db.close()
    words = sum(len(t.split()) for t in passages)
    assert words < 2 * 2 * len(lines) + 50  # the words of both copies, nothing else
    assert sum(len(t) for t in passages) < 60_000  # was megabytes of '>'
    outside_code = [t.replace("> prompt kept in code", "") for t in passages]
    assert not any(">" in t for t in outside_code)
    assert any("> prompt kept in code" in t for t in passages)  # code is content
    assert f"слово{DEEP}" in " ".join(turns).split()
    assert any(t.startswith("Смотри, что я нашёл:\nслово50\n") for t in turns)


def test_strip_quote_markers_keeps_code_and_inline_gt() -> None:
    text = "> a\n>> b\n> > c\n```\n> code\n```\n> ```\n> quoted code\n> ```\nx > y\n   > indented"
    assert strip_quote_markers(text) == "a\nb\nc\n```\n> code\n```\n```\nquoted code\n```\nx > y\nindented"
    assert strip_quote_markers("no quotes at all") == "no quotes at all"
