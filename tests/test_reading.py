"""Read functions shared by the MCP server and the web explorer: a turn in context, a note's text, status.

A small hand-written Nexus note indexed with the fake embedder (no model needed).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from index_helpers import run_index

from indexer.embed import FakeEmbedder
from indexer.store import open_index
from queries.notes import read_note
from queries.search import SearchError
from queries.status import index_status
from queries.turns import get_turn
from vault_schema.errors import NoteReadError

UIDS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(6)]


def nexus_note(texts: list[str], uids: list[str], conv: str = "conv-a") -> str:
    head = (
        "---\nnexus: nexus-ai-chat-importer\nplugin_version: \"1.3.0\"\nprovider: chatgpt\n"
        f"aliases: Разговор\nconversation_id: {conv}\ncreate_time: 2025-03-01T10:00:00Z\n---\n\n"
    )
    blocks = []
    for i, (text, uid) in enumerate(zip(texts, uids, strict=True)):
        kind, label = ("user", "User") if i % 2 == 0 else ("agent", "Assistant")
        blocks.append(f">[!nexus_{kind}] **{label}** - 01.03.2025 at 10:0{i}\n> {text}\n<!-- UID: {uid} -->\n\n---\n")
    return head + "\n".join(blocks)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("reading")
    vault = base / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "Chats").mkdir()
    texts = [f"Реплика номер {i}: " + "слово " * (40 if i == 3 else 3) for i in range(6)]
    (vault / "Chats" / "Разговор.md").write_text(nexus_note(texts, UIDS), encoding="utf-8")
    (vault / "Chats" / "Другой.md").write_text(nexus_note(["Одна реплика."], [UIDS[0]], conv="conv-b"),
                                               encoding="utf-8")
    run_index(vault, base / "index", FakeEmbedder())
    return vault, base / "index"


def test_turn_with_neighbours_in_note_order(indexed: tuple[Path, Path]) -> None:
    _, index_dir = indexed
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        ctx = get_turn(idx, f"conv-a:{UIDS[3]}", context=2)
        d = ctx.to_dict()
        assert d["turn"]["uid"] == UIDS[3] and d["turn"]["role"] == "assistant"
        assert d["turn"]["text"].startswith("Реплика номер 3") and not d["turn"]["truncated"]
        assert [t["uid"] for t in d["before"]] == UIDS[1:3]
        assert [t["uid"] for t in d["after"]] == UIDS[4:6]
        assert d["conversation"]["note"] == "Chats/Разговор.md"
        assert d["conversation"]["uri"].startswith("obsidian://open?vault=")
        # the first turn has no predecessors; context 0 gives the turn alone
        first = get_turn(idx, f"conv-a:{UIDS[0]}", context=1)
        assert first.before == () and [t.uid for t in first.after] == [UIDS[1]]
        assert get_turn(idx, f"conv-a:{UIDS[2]}", context=0).to_dict()["after"] == []


def test_turn_texts_are_cut_when_asked(indexed: tuple[Path, Path]) -> None:
    _, index_dir = indexed
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        ctx = get_turn(idx, f"conv-a:{UIDS[3]}", context=1, max_chars=50, context_chars=10)
        assert ctx.turn.truncated and len(ctx.turn.text) <= 52 and ctx.turn.text.endswith("…")
        assert ctx.turn.chars > 200
        assert all(t.truncated and len(t.text) <= 12 for t in (*ctx.before, *ctx.after))


def test_unknown_and_ambiguous_uids_say_how_to_fix(indexed: tuple[Path, Path]) -> None:
    _, index_dir = indexed
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        with pytest.raises(SearchError, match="no turn with UID"):
            get_turn(idx, "nope")
        with pytest.raises(SearchError, match="CONVERSATION_ID:UID"):
            get_turn(idx, UIDS[0])  # in both conversations
        with pytest.raises(SearchError, match="0 or more"):
            get_turn(idx, f"conv-a:{UIDS[0]}", context=-1)


def test_status_document(indexed: tuple[Path, Path]) -> None:
    vault, index_dir = indexed
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        d = index_status(idx, vault=vault)
    assert d["vault"] == str(vault) and d["index_dir"] == str(index_dir)
    assert d["counts"]["turns"] == 7 and d["counts"]["conversations"] == 2
    assert d["engine"] == "fake" and d["writer"] is None and d["watcher"] is False


# ------------------------------------------------------------------------------------- notes


def test_note_pages_cover_the_text_exactly(tmp_path: Path) -> None:
    (tmp_path / "Папка").mkdir()
    text = "".join(f"Строка {i} с образом «карта смысла».\n" for i in range(200))
    (tmp_path / "Папка" / "Заметка.md").write_text(text, encoding="utf-8")
    pages, offset = [], 0
    while offset is not None:
        page = read_note(tmp_path, "Папка/Заметка.md", offset=offset, max_chars=1000)
        pages.append(page.text)
        offset = page.next_offset
    assert "".join(pages) == text and len(pages) == -(-len(text) // 1000)
    # Obsidian's link form (no .md) and Windows separators name the same note
    same = read_note(tmp_path, "Папка\\Заметка", max_chars=10)
    assert same.path == "Папка/Заметка.md" and same.to_dict()["truncated"] and same.next_offset == 10


def test_mojibake_is_repaired_and_bad_bytes_replaced(tmp_path: Path) -> None:
    clean = "Карта смысла — это образ."
    (tmp_path / "m.md").write_bytes(clean.encode("utf-8").decode("mac_roman").encode("utf-8"))
    page = read_note(tmp_path, "m.md")
    assert page.text == clean and page.repaired
    (tmp_path / "bad.md").write_bytes(b"ok \xff\xfe end")
    assert read_note(tmp_path, "bad.md").text == "ok \ufffd\ufffd end"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside.md", "leaves the vault"),
        ("Папка/../../outside.md", "leaves the vault"),
        ("/etc/passwd", "not an absolute one"),
        ("C:/Users/x.md", "not an absolute one"),
        ("~/x.md", "not an absolute one"),
        (".obsidian/workspace.md", "hidden folders"),
        ("notes.json", "only Markdown"),
        ("", "vault-relative path"),
        ("missing.md", "no such note"),
        ("a\x00b.md", "NUL"),
    ],
)
def test_paths_outside_the_vault_or_not_notes_are_refused(tmp_path: Path, path: str, message: str) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (tmp_path / "outside.md").write_text("secret", encoding="utf-8")
    (vault / "notes.json").write_text("{}", encoding="utf-8")
    with pytest.raises(NoteReadError, match=message):
        read_note(vault, path)


def test_symlink_out_of_the_vault_binary_fifo_and_folder_are_refused(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (tmp_path / "secret.md").write_text("secret", encoding="utf-8")
    os.symlink(tmp_path / "secret.md", vault / "link.md")
    with pytest.raises(NoteReadError, match="outside the vault"):
        read_note(vault, "link.md")
    (vault / "bin.md").write_bytes(b"\x89PNG\x00\x00")
    with pytest.raises(NoteReadError, match="binary"):
        read_note(vault, "bin.md")
    (vault / "dir.md").mkdir()
    with pytest.raises(NoteReadError, match="folder"):
        read_note(vault, "dir.md")
    os.mkfifo(vault / "pipe.md")  # a read would block for ever: refused without opening it for long
    with pytest.raises(NoteReadError, match="FIFO"):
        read_note(vault, "pipe.md")
    # a symlinked folder is part of the vault (as in Obsidian): its notes are read
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "n.md").write_text("shared note", encoding="utf-8")
    os.symlink(tmp_path / "shared", vault / "Shared")
    assert read_note(vault, "Shared/n.md").text == "shared note"
    (vault / "ok.md").write_text("short", encoding="utf-8")
    with pytest.raises(NoteReadError, match="past the end"):
        read_note(vault, "ok.md", offset=99)
