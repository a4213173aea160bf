"""Bad input never crashes: each yields a Note plus warnings that name the path and line."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault_schema.errors import NoteReadError
from vault_schema.models import Note
from vault_schema.parse import load_note, parse_note

NEXUS_HEAD = ">[!nexus_user] **User** - 24.07.2025 at 14:45\n"


def _codes(note: Note) -> dict[str, int | None]:
    return {w.code: w.line for w in note.warnings}


def test_binary_file_is_empty_with_warning() -> None:
    note = parse_note(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "img.md")
    assert note.kind == "empty"
    assert _codes(note) == {"binary": 3}  # the first NUL is on line 3
    assert note.warnings[0].path == "img.md"
    assert str(note.warnings[0]).startswith("img.md:3: ")


def test_invalid_utf8_is_replaced_with_warning() -> None:
    data = b"first line\nsecond \xff\xfe line with [[Link]]\n"
    note = parse_note(data, "bad.md")
    assert note.kind == "note"
    assert _codes(note) == {"invalid-utf8": 2}
    assert "\ufffd" in note.body
    assert [link.target for link in note.links] == ["Link"]


def test_utf8_bom_and_utf16() -> None:
    text = NEXUS_HEAD + "> Привет\n<!-- UID: u1 -->\n"
    for data in (b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16")):
        note = parse_note(data, "bom.md")
        assert note.kind == "conversation"
        assert [t.text for t in note.turns] == ["Привет"]


@pytest.mark.parametrize("data", [b"", "", b"   \n\n", "\n"])
def test_empty_note(data: bytes | str) -> None:
    note = parse_note(data, "empty.md")
    assert note.kind == "empty"
    assert _codes(note) == {"empty": 1}


def test_unterminated_frontmatter_is_text() -> None:
    note = parse_note("---\ntitle: x\n\nBody [[Link]]\n", "u.md")
    assert note.kind == "note"
    assert note.frontmatter == {}
    assert _codes(note) == {"bad-frontmatter": 1}
    assert [(link.target, link.line) for link in note.links] == [("Link", 4)]


def test_broken_yaml_falls_back_line_by_line_and_names_the_line() -> None:
    text = (
        '---\nnexus: nexus-ai-chat-importer\nplugin_version: "1.2.0"\naliases: "A "quoted" title"\n'
        "conversation_id: c-1\n---\n" + NEXUS_HEAD + "> Hi\n<!-- UID: u1 -->\n"
    )
    note = parse_note(text, "y.md")
    assert note.kind == "conversation"
    assert note.conversation is not None and note.conversation.conversation_id == "c-1"
    assert note.aliases == ('A "quoted" title',)
    assert _codes(note) == {"bad-frontmatter": 4}


def test_yaml_alias_bomb_is_contained() -> None:
    bomb = "---\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    ) + "---\nbody\n"
    start = time.perf_counter()
    note = parse_note(bomb, "bomb.md")
    assert time.perf_counter() - start < 10
    assert "bad-frontmatter" in _codes(note)


def test_deeply_nested_quotes() -> None:
    deep = ">" * 100_000 + " deep [[Link]]\n"
    note = parse_note(NEXUS_HEAD + deep + "<!-- UID: u1 -->\n", "deep.md")
    assert note.kind == "conversation"
    assert len(note.turns) == 1
    assert note.turns[0].text.startswith(">" * 99_999 + " deep")
    plain = parse_note(deep * 3, "deep-plain.md")
    assert plain.kind == "note"


def test_huge_single_line_and_bracket_runs_stay_fast() -> None:
    # markdown-it's link rule is quadratic on '[[[['; ours is not (and huge texts use the line scanner)
    for text in ("[[" * 200_000, "[" * 400_000, "[a](" * 100_000, "a" * 2_000_000, "`" * 400_000):
        start = time.perf_counter()
        note = parse_note(text, "big.md")
        assert time.perf_counter() - start < 15, text[:10]
        assert note.kind == "note"


def test_large_conversation_keeps_every_turn() -> None:
    turn = NEXUS_HEAD + "> Текст реплики со ссылкой [[Карта]] и #тегом\n<!-- UID: u{} -->\n"
    text = "".join(turn.format(i) for i in range(20_000))  # ~2.5 MB: takes the linear scanner path
    note = parse_note(text, "big.md")
    assert len(note.turns) == 20_000
    assert note.turns[-1].uid == "u19999"
    assert len(note.links) == 20_000 and len(note.tags) == 20_000
    assert note.links[-1].line == 3 * 19_999 + 2


def test_warnings_are_capped_per_kind() -> None:
    text = "".join(NEXUS_HEAD + f"> t{i}\n<!-- UID: same -->\n" for i in range(100))
    note = parse_note(text, "dup.md")
    dup = [w for w in note.warnings if w.code == "duplicate-uid"]
    assert len(dup) == 21
    assert "79 more" in dup[-1].message
    assert len({t.uid for t in note.turns}) == 100


def test_str_with_lone_surrogates_and_nul() -> None:
    note = parse_note("text \ud800 more", "s.md")
    assert "invalid-unicode" in _codes(note)
    assert parse_note("a\x00b", "n.md").kind == "empty"


# ----------------------------------------------------------------------------- load_note


def test_load_note_errors(tmp_path: Path) -> None:
    with pytest.raises(NoteReadError, match="no such file"):
        load_note(tmp_path, "missing.md")
    (tmp_path / "dir.md").mkdir()
    with pytest.raises(NoteReadError, match="directory"):
        load_note(tmp_path, "dir.md")


def test_load_note_permission_denied(tmp_path: Path) -> None:
    """As root (CI) the read runs as ``nobody``: root reads any file whatever its mode."""
    from as_nobody import IS_ROOT, as_nobody, cleanup, shared_dir

    root = shared_dir(owner_nobody=False) if IS_ROOT else tmp_path
    try:
        p = root / "locked.md"
        p.write_text("x")
        p.chmod(0)
        with pytest.raises(NoteReadError, match="permission"):
            (as_nobody if IS_ROOT else lambda f, *a: f(*a))(load_note, root, "locked.md")
    finally:
        if IS_ROOT:
            cleanup(root)


def test_load_note_size_cap(tmp_path: Path) -> None:
    (tmp_path / "big.md").write_text("x" * 2000)
    note = load_note(tmp_path, "big.md", max_bytes=1000)
    assert note.kind == "empty"
    assert _codes(note) == {"too-large": None}
    assert load_note(tmp_path, "big.md").kind == "note"


# ----------------------------------------------------------------------------- properties

_nexusish = st.lists(
    st.sampled_from([
        NEXUS_HEAD, ">[!nexus_agent] **Assistant · gpt-4o** - 07/24/2025 at 2:45:12 PM\n", "<!-- UID: x -->\n",
        "### User, on 28/11/2024 at 04:02;\n", "#### ChatGPT, on 28/11/2024 at 04:02;\n", ">> reply\n", "---\n",
        ">>[!nexus_attachment] **a.png**\n", ">[!nexus_prompt] **P**\n", "> text [[L|a]] #t ^b1\n", "\n", "```\n",
        "---\nnexus: nexus-ai-chat-importer\nconversation_id: c\n---\n", "aliases: [\n", "Created: 05/07/2025 at 14:45\n",
    ]),
    max_size=30,
).map("".join)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(st.text(), _nexusish, st.builds(lambda a, b: a + b, _nexusish, st.text(max_size=50))))
def test_parse_never_raises_on_text(text: str) -> None:
    note = parse_note(text, "h.md")
    assert isinstance(note, Note)
    note.to_dict()
    uids = [t.uid for t in note.turns]
    assert len(uids) == len(set(uids))


@settings(max_examples=150, deadline=None)
@given(st.binary())
def test_parse_never_raises_on_bytes(data: bytes) -> None:
    note = parse_note(data, "h.md")
    assert isinstance(note, Note)
    assert note.sha256
    note.to_dict()


_clean_alphabet = st.sampled_from(
    list("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ")
    + list("東京日本語中文한국어") + list(" .,;:!?-—–«»“”‘’…()[]#*\n") + list("abcdefXYZ0123456789")
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_clean_alphabet, max_size=300).map("".join))
def test_clean_cyrillic_and_cjk_text_is_never_repaired(text: str) -> None:
    from vault_schema.mojibake import repair

    assert repair(text) == (text, 0, -1)
