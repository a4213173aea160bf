"""parse_note on real Nexus notes, the seed note, a planted vault (against its truth) and the stub vault."""
from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from vault_schema.parse import derive_turn_uid, load_note, parse_note

STUB = Path(__file__).parent / "vault-stub"
HEADER_RE = re.compile(r"^>\[!nexus_(user|agent)\]", re.MULTILINE)
UID_LINE_RE = re.compile(r"^<!-- UID: (.*?) -->", re.MULTILINE)


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    dst = tmp_path / "vault-stub"
    shutil.copytree(STUB, dst)
    return dst


def _copy_fixtures(fixtures_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "fixtures"
    shutil.copytree(fixtures_dir, dst)
    for p in dst.rglob("*"):  # the copy is the test's own, whatever the checkout's modes
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


# ----------------------------------------------------------------------------- fixtures


def test_every_fixture_parses_with_all_turns_and_uids(fixtures_dir: Path, tmp_path: Path) -> None:
    root = _copy_fixtures(fixtures_dir, tmp_path)
    notes = sorted(root.rglob("*.md"))
    assert len(notes) >= 48
    for path in notes:
        rel = path.relative_to(root).as_posix()
        note = load_note(root, rel)
        raw = path.read_text(encoding="utf-8")
        if path.name == "SOURCES.md":
            assert note.kind == "note"
            continue
        assert note.kind == "conversation", rel
        # every header and every UID line is accounted for, in order (the seed's mojibake is ASCII-safe here)
        assert len(note.turns) == len(HEADER_RE.findall(raw)), rel
        assert [t.uid for t in note.turns] == UID_LINE_RE.findall(raw), rel
        assert all(t.time is not None for t in note.turns), rel
        assert all(not t.uid_derived for t in note.turns), rel
        assert [t.position for t in note.turns] == list(range(len(note.turns)))
        roles = [m.group(1) for m in HEADER_RE.finditer(raw)]
        assert [t.role for t in note.turns] == ["user" if r == "user" else "assistant" for r in roles], rel
        for t in note.turns:
            assert not any(line.startswith("> ") for line in t.text.split("\n")[:1]), rel
            assert "[!nexus_attachment]" not in t.text and "[!nexus_artifact]" not in t.text, rel
        if "conversation_id:" in raw:
            assert note.conversation is not None
            assert note.conversation.conversation_id in raw
            assert not note.conversation.id_derived
            title = re.search(r"^# Title: (.*)$", raw, re.MULTILINE)
            assert title and note.title == title.group(1).strip()


def test_seed_note_mojibake_is_repaired(seed_note: Path) -> None:
    note = load_note(seed_note.parent, seed_note.name)
    assert note.kind == "conversation"
    assert note.mojibake_repaired
    assert [(w.code, w.line) for w in note.warnings] == [("mojibake-repaired", 2)]  # line 1 is ASCII
    raw = seed_note.read_text(encoding="utf-8")
    assert [t.uid for t in note.turns] == UID_LINE_RE.findall(raw)
    assert [t.uid for t in note.turns] == ["07b60218-f1a0-48f2-b067-1f28d03f5157", "ae506e99-72ba-4910-9334-351ca5f38f19"]
    assert [t.role for t in note.turns] == ["user", "assistant"]
    assert [t.time for t in note.turns] == [dt.datetime(2025, 7, 24, 14, 45)] * 2
    assert note.turns[0].text.startswith("Из этого проистекает")
    assert note.turns[1].text.startswith("Ты выражаешь не просто размышление")
    # nothing of the mojibake signature is left
    assert not re.search(r"[–—][ÄÅÇÉÑÖÜáàâäãåçéèêëíìîïñóòôöõúùûü∑ƒ]", note.body)
    # body-only note: a derived id that does not depend on the file name
    assert note.conversation is not None and note.conversation.id_derived
    again = parse_note(seed_note.read_bytes(), "elsewhere/renamed.md")
    assert again.conversation is not None
    assert again.conversation.conversation_id == note.conversation.conversation_id


def test_clean_cyrillic_and_accents_are_not_repaired() -> None:
    text = "Из этого проистекает — café, naïve, «ёлка», 東京 ‘quotes’ …\n"
    note = parse_note(text, "clean.md")
    assert not note.mojibake_repaired
    assert note.body.strip() == text.strip()


@pytest.mark.parametrize("codec", ["mac_roman", "sloppy-windows-1252", "latin-1"])
@pytest.mark.parametrize(
    "original",
    ["Из этого проистекает, что смысл — это карта. Ещё одна строка с ёжиком.",
     "Élève à l'école: naïveté, façade. Ça va très bien — merci “beaucoup”."],
)
def test_mojibake_from_each_codec_is_repaired(codec: str, original: str) -> None:
    import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252)

    garbled = original.encode("utf-8").decode(codec)
    note = parse_note("# Note\n\n" + garbled, "m.md")
    assert note.mojibake_repaired
    assert note.body == "# Note\n\n" + original


# ----------------------------------------------------------------------------- planted vault


def test_planted_vault_matches_truth(planted_source: tuple[Path, dict]) -> None:
    vault, truth = planted_source
    styles = set()
    for conv in truth["conversations"]:
        styles.add((conv["style"], conv["locale"]))
        note = load_note(vault, Path(conv["path"]).as_posix())
        assert note.kind == "conversation", conv["path"]
        assert note.warnings == (), conv["path"]
        assert note.conversation is not None
        assert note.conversation.conversation_id == conv["conversation_id"]
        assert note.conversation.provider == conv["provider"]
        assert note.conversation.plugin_version == conv["plugin_version"]
        assert note.title == conv["title"]
        assert len(note.turns) == len(conv["turns"]), conv["path"]
        for got, want in zip(note.turns, conv["turns"], strict=True):
            assert got.uid == want["uid"]
            assert got.role == want["role"]
            assert got.text == want["text"], (conv["path"], got.uid)
            assert got.time == dt.datetime.fromisoformat(want["time"]), (conv["path"], got.uid)  # as written
            assert not got.uid_derived
        # created is local like the turn times (the first message starts the conversation); the UTC
        # offset is known exactly when the frontmatter has ISO UTC times (>= 1.3.0)
        c = note.conversation
        assert c.created == note.turns[0].time, conv["path"]
        iso = conv["style"] in ("1.3.0", "1.3.2", "1.6.3")
        assert c.utc_offset == (conv["utc_offset"] * 60 if iso else None), conv["path"]
        if iso:
            assert c.created_utc == note.turns[0].time - dt.timedelta(hours=conv["utc_offset"])
    # every layout and locale family the generator knows is in the planted vault
    assert {s for s, _ in styles} >= {"1.0.2", "1.0.8", "1.0.x", "1.2.0", "1.3.0", "1.3.2", "1.6.3"}
    assert {loc for _, loc in styles} >= {"ru", "en", "de", "nl", "ko", "hu", "sv", "fr", "ja", "zh", "id", "ar"}
    assert {c["custom_format"] for c in truth["conversations"]} >= {None, "iso", "us", "eu", "de", "jp"}


# ----------------------------------------------------------------------------- stub vault: versions


def test_legacy_1_0_headings(stub: Path) -> None:
    note = load_note(stub, "Nexus/Conversations/chatgpt/legacy-1.0.md")
    assert note.kind == "conversation"
    assert [t.role for t in note.turns] == ["user", "assistant", "assistant"]
    assert [t.time for t in note.turns] == [
        dt.datetime(2024, 11, 28, 4, 2), dt.datetime(2024, 11, 28, 4, 3), dt.datetime(2024, 11, 28, 4, 5)
    ]
    assert note.turns[0].text == "Как работает память модели?\n> цитата внутри"
    assert note.turns[1].text == "Память модели — это веса.\n\nВторая строка."
    # `unknown` is no id: a stable one is derived
    last = note.turns[2]
    assert last.uid_derived
    assert last.uid == derive_turn_uid("11111111-aaaa-4bbb-8ccc-000000000001", 2, last.text)
    assert last.text == "Ответ с вложением."
    assert [a.title for a in last.attachments] == ["notes.txt"]


def test_1_2_0_top_level_attachments_belong_to_the_turn(stub: Path) -> None:
    note = load_note(stub, "Nexus/Conversations/chatgpt/v120-top-level.md")
    t = note.turns[1]
    assert t.text == "Image générée par DALL-E\n\n> a quoted line"
    assert [(a.kind, a.title) for a in t.attachments] == [
        ("prompt", "DALL-E Prompt"),
        ("attachment", "dalle_abc_1024x1024.png (image/png) - 1.6 MB"),
    ]
    assert "A lighthouse in thick fog" in t.attachments[0].text
    assert t.attachments[1].text == "![[Nexus_attachments/chatgpt/images/dalle_abc_1024x1024.png]]"
    assert note.turns[0].time == dt.datetime(2025, 7, 24, 18, 29)
    assert note.conversation is not None
    assert note.conversation.created == dt.datetime(2025, 7, 24, 18, 29)
    assert note.conversation.url == "https://chat.openai.com/c/11111111-aaaa-4bbb-8ccc-000000000002"
    # tags written in chat content are chat content, not note metadata
    assert [(tag.name, tag.source) for tag in note.tags] == [("art", "turn")]
    embed = next(link for link in note.links if link.embed)
    assert embed.line == 36


def test_1_3_nested_callouts_no_content_and_code(stub: Path) -> None:
    note = load_note(stub, "Nexus/Conversations/chatgpt/v133-nested.md")
    assert len(note.turns) == 4
    dalle = note.turns[1]
    assert dalle.text == "DALL-E Generated Image"
    assert [a.kind for a in dalle.attachments] == ["prompt", "attachment"]
    assert dalle.attachments[0].text == "```\nElegant feminine logo design reading 'mimiメソッド'\n```"
    assert dalle.attachments[1].text == "![[attachments/dalle_fad9b922_1024x1024.png]]"
    empty = note.turns[2]
    assert empty.text == ""
    assert [a.title for a in empty.attachments] == ["photo.jpg (image/jpeg) - 20.5 KB"]
    code = note.turns[3]
    # exactly one level stripped: the shell redirect keeps its '>'
    assert code.text == 'Code:\n```sh\n> redirect > file\necho "[[not a link]] #nottag"\n```\n\n> quoted reply'
    assert all(link.target != "not a link" for link in note.links)
    assert all(tag.name != "nottag" for tag in note.tags)
    assert note.conversation is not None
    # ISO UTC frontmatter, local header (ja, UTC+9): created is local like the turns, the offset is kept
    assert note.conversation.created_utc == dt.datetime(2025, 10, 26, 11, 57, 56)
    assert note.conversation.utc_offset == 9 * 60
    assert note.conversation.created == dt.datetime(2025, 10, 26, 20, 57, 56) == note.turns[0].time
    assert dalle.time == dt.datetime(2025, 10, 26, 20, 57, 56)  # local


def test_1_6_model_header_and_custom_de_format(stub: Path) -> None:
    note = load_note(stub, "Nexus/Conversations/chatgpt/v163-model.md")
    assert note.title == "Размышление о смысле жизни"  # from # Title:, not from the mangled alias
    assert note.aliases == ("о смысле жизни",)
    assert [t.model for t in note.turns] == [None, "gpt-4o"]
    assert [t.time for t in note.turns] == [dt.datetime(2025, 7, 24, 14, 45, 12), dt.datetime(2025, 7, 24, 14, 46, 40)]
    assert note.conversation is not None and note.conversation.models == ("gpt-4o",)
    assert [(t.name, t.source) for t in note.tags] == [("идеи/образы", "turn")]
    link = note.links[0]
    assert (link.target, link.heading, link.alias, link.line) == ("Карта и территория", "Корни", "карта", 23)


def test_1_7_uid_id_field_canvas_and_inline_artifact(stub: Path) -> None:
    note = load_note(stub, "Nexus/Conversations/chatgpt/id-field-uid.md")
    assert note.kind == "conversation"
    assert note.conversation is not None
    assert note.conversation.conversation_id == "11111111-aaaa-4bbb-8ccc-000000000008"
    assert note.turns[0].uid == "88888888-0000-4000-8000-000000000001-prompt"
    t = note.turns[1]
    assert t.text == "Потому что."
    assert [(a.kind, a.title) for a in t.attachments] == [("canvas", "Document"), ("artifact", "x.py")]
    assert t.attachments[1].text == "```python\nprint(1)\n```"


def test_same_role_runs_orphan_and_missing_uids(stub: Path) -> None:
    rel = "Nexus/Conversations/chatgpt/runs-orphans-missing.md"
    note = load_note(stub, rel)
    assert [t.role for t in note.turns] == ["user", "user", "assistant", "assistant"]
    assert [t.uid_derived for t in note.turns] == [False, False, True, True]
    assert note.turns[2].text == "Ответ без UID"  # the '---' separator is not content
    codes = {(w.code, w.line) for w in note.warnings}
    assert ("orphan-uid", 8) in codes
    assert ("missing-uid", 10) in codes
    assert ("duplicate-uid", 14) in codes
    assert all(w.path == rel for w in note.warnings)
    # derived ids are stable
    assert load_note(stub, rel).turns[2].uid == note.turns[2].uid


def test_crlf_is_normalised(stub: Path) -> None:
    raw = (stub / "Nexus/Conversations/chatgpt/v133-nested.md").read_bytes()
    lf = parse_note(raw, "a.md")
    crlf = parse_note(raw.replace(b"\n", b"\r\n"), "a.md")
    assert [t.to_dict() for t in crlf.turns] == [t.to_dict() for t in lf.turns]
    assert [link.to_dict() for link in crlf.links] == [link.to_dict() for link in lf.links]


def test_date_order_from_evidence_reference_or_warning(stub: Path) -> None:
    amb = load_note(stub, "Nexus/Conversations/chatgpt/eu-ambiguous.md")
    assert [t.time for t in amb.turns] == [dt.datetime(2025, 7, 5, 14, 45), dt.datetime(2025, 7, 5, 14, 50)]
    warning = next(w for w in amb.warnings if w.code == "ambiguous-date")
    assert warning.line == 7 and "05/07/2025" in warning.message  # create_time, the first one
    ev = load_note(stub, "Nexus/Conversations/chatgpt/eu-evidence.md")
    assert [t.time for t in ev.turns] == [dt.datetime(2025, 7, 5, 0, 59), dt.datetime(2025, 7, 24, 14, 0)]
    assert not ev.warnings
    ref = load_note(stub, "Nexus/Conversations/chatgpt/mdy-by-reference.md")
    assert ref.turns[0].time == dt.datetime(2025, 5, 7, 14, 0)
    assert not ref.warnings


def test_body_only_note(stub: Path) -> None:
    note = load_note(stub, "body-only.md")
    assert note.kind == "conversation"
    assert note.conversation is not None and note.conversation.id_derived
    assert note.title == "body-only"
    assert [t.text for t in note.turns] == ["Вопрос без фронтматтера", "Ответ #метафора"]
    assert [(t.name, t.source) for t in note.tags] == [("метафора", "turn")]


@pytest.mark.parametrize(
    ("rel", "kind"),
    [
        ("Nexus/Conversations/chatgpt/artifact-note.md", "artifact"),
        ("Nexus/Reports/import-report.md", "import-report"),
        ("Notes/tropegraph-report.md", "tropegraph-report"),
        ("Notes/plain.md", "note"),
        ("README.md", "note"),
    ],
)
def test_kinds(stub: Path, rel: str, kind: str) -> None:
    note = load_note(stub, rel)
    assert note.kind == kind
    assert note.turns == ()


def test_old_import_report_and_custom_id_property() -> None:
    old_report = "---\nnexus: Nexus AI Chat Importer\nprovider: chatgpt\n---\n# Import report\n"
    assert parse_note(old_report, "r.md").kind == "import-report"
    custom = ("---\nnexus: nexus-ai-chat-importer\nchat_key: abc\n---\n"
              ">[!nexus_user] **User** - 2026/06/01 at 19:00:00\n> hi\n<!-- UID: u1 -->\n")
    note = parse_note(custom, "c.md")
    assert note.kind == "conversation"
    assert note.conversation is not None and note.conversation.id_derived
    convoviz = "---\nconversation_id: x\ntitle: t\n---\n# Me\nhello\n"  # conversation_id alone is not Nexus
    assert parse_note(convoviz, "v.md").kind == "note"


def test_import_report_table_link_with_escaped_pipe(stub: Path) -> None:
    note = load_note(stub, "Nexus/Reports/import-report.md")
    assert [(link.target, link.alias) for link in note.links] == [
        ("Nexus/Conversations/chatgpt/v120-top-level.md", "Picture of a lighthouse")
    ]


# ----------------------------------------------------------------------------- plain notes


def test_plain_note_frontmatter_links_tags_headings_blocks(stub: Path) -> None:
    note = load_note(stub, "Notes/plain.md")
    assert note.title == "plain"
    assert note.aliases == ("Простая заметка",)
    assert [(t.name, t.source) for t in note.tags] == [
        ("метафора", "frontmatter"), ("идеи/образы", "frontmatter"),
        ("метафора", "body"), ("идеи/образы", "body"), ("тегом", "body"),
    ]
    assert all(t.name not in ("1984", "incode", "nottag") for t in note.tags)
    got = [(lk.target, lk.heading, lk.block, lk.alias, lk.embed, lk.kind, lk.line) for lk in note.links]
    assert got == [
        ("Карта и территория", "Корни", None, "карта", False, "wikilink", 9),
        ("image.png", None, None, None, True, "wikilink", 9),
        ("", None, "blk1", None, False, "wikilink", 9),
        ("Other Note.md", "Part", None, None, False, "markdown", 10),
        ("Цитата", None, None, None, False, "wikilink", 19),
    ]
    assert [(h.level, h.text, h.line) for h in note.headings] == [(1, "Заголовок", 7), (2, "Второй раздел", 17)]
    assert note.block_ids == ("blk1",)
    assert "frontmatter" not in note.body and note.body.startswith("# Заголовок")


def test_alias_list_and_block_id(stub: Path) -> None:
    note = load_note(stub, "Notes/Карта и территория.md")
    assert note.aliases == ("map and territory",)
    assert note.block_ids == ("root",)
