"""The held-out technical-prose bench (``bench/tech_prose_bench.py``) builds a vault our parser reads
as the conversations it claims: every page one Nexus conversation, the title asked by the user and
every paragraph of the data in the assistant's turns."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from vault_schema.parse import parse_note

REPO = Path(__file__).resolve().parent.parent


def test_every_page_is_a_conversation_holding_its_paragraphs(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import tech_prose_bench as bench
    finally:
        sys.path.remove(str(REPO / "bench"))
    pages = [json.loads(line) for line in bench.DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert all(p["source"].startswith("https://github.com/") and len(p["paragraphs"]) >= 2 for p in pages)

    n = bench.write_vault(tmp_path / "vault")

    notes = sorted((tmp_path / "vault").rglob("page-*.md"))
    assert n == len(pages) == len(notes)
    for page, path in zip(pages[:: max(1, len(pages) // 10)], notes[:: max(1, len(pages) // 10)], strict=True):
        note = parse_note(path.read_bytes(), path.name)
        assert note.kind == "conversation", path
        roles = [t.role for t in note.conversation.turns]
        assert roles[0] == "user" and set(roles[1:]) == {"assistant"}
        assert all(t.time is not None for t in note.conversation.turns)
        said = " ".join(" ".join(t.text.split()) for t in note.conversation.turns[1:])
        assert all(" ".join(p.split()) in said for p in page["paragraphs"]), path
