"""What passages are: structure-aware chunks without junk, and head passages (titles, aliases,
descriptions, heading paths)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from index_helpers import run_index, snapshot

import queries.search as search_module
from indexer.chunking import MIN_WORDS, SLACK, Chunker, is_meaningful
from indexer.embed import FakeEmbedder
from indexer.passages import BODY, HEAD_CONVERSATION, HEAD_PATH, HEAD_TITLE, heads, note_turns, turn_passages
from indexer.store import open_index
from queries.search import CROSS_LANGUAGE, Filters, KeywordQuery, keyword_turns, search
from vault_schema.parse import parse_note

EMB = FakeEmbedder(max_tokens=66)
CHUNKER = Chunker(64, EMB.count_tokens)


def split(text: str) -> list[str]:
    chunks = CHUNKER.split(text)
    for c in chunks:
        assert text[c.start : c.start + len(c.text)] == c.text
    return [c.text for c in chunks]


def test_a_long_table_is_split_between_rows_and_keeps_its_header_rule() -> None:
    rows = [f"| Действие номер {i} | `Ctrl+{i}` |" for i in range(40)]
    text = "Сочетания клавиш для редактирования.\n\n| Действие | Сочетание |\n|-|-|\n" + "\n".join(rows) + "\n\n|"
    parts = split(text)
    assert len(parts) > 2
    for part in parts[1:]:
        lines = [line for line in part.split("\n") if line]
        assert all(line.startswith("|") and line.endswith("|") for line in lines), part
    assert any("| Действие | Сочетание |\n|-|-|" in p for p in parts)
    assert all(is_meaningful(p) for p in parts)  # the lone "|" joined a neighbour


def test_a_long_list_is_split_between_items() -> None:
    items = [f"- item {i}: keep the river map near the bridge\n  and a second line of item {i}" for i in range(20)]
    parts = split("Steps:\n" + "\n".join(items))
    assert len(parts) > 2
    for part in parts[1:]:
        assert part.startswith("- item"), part
        assert part.count("- item") == part.count("second line")  # an item keeps its continuation


def test_a_long_code_block_is_split_between_lines_and_fences_stay_with_code() -> None:
    code = "\n".join(f"value_{i} = compute(river_{i}, bridge_{i})" for i in range(30))
    text = f"Here is the script:\n\n```python\n{code}\n\nprint(value_1)\n```\n\nIt prints one value."
    parts = split(text)
    assert len(parts) > 2
    assert not any(p.strip() in ("```", "```python") for p in parts)
    assert any("```python\nvalue_0" in p for p in parts)
    for part in parts:
        for line in part.split("\n"):
            assert line in text.split("\n")  # never cut inside a line


def test_a_heading_stays_with_what_follows_it() -> None:
    long_para = " ".join(["Слова о том, как мост соединяет два берега реки."] * 8)
    text = "Вступление о картах и мостах, в нём несколько слов.\n\n## Мосты\n\n" + long_para
    parts = split(text)
    assert not any(re.fullmatch(r"#+ .*", p) for p in parts)
    assert any(p.startswith("## Мосты\n\nСлова") for p in parts)


def test_fragments_too_small_to_mean_anything_join_a_neighbour() -> None:
    para = " ".join(["The map is not the territory, and the bridge is not the river."] * 6)
    text = f"{para}\n\n|\n\nnote`.\n\n---\n\n{para}"
    parts = split(text)
    assert len(parts) >= 2
    assert all(len(re.findall(r"\w{2,}", p)) >= MIN_WORDS for p in parts)
    assert not any(p.strip() in ("|", "note`.", "---") for p in parts)


def test_a_short_turn_is_one_passage_even_if_tiny() -> None:
    assert split("Да.") == ["Да."]
    assert split("  \n") == []


markdownish = st.lists(
    st.one_of(
        st.sampled_from(["река течёт к мосту.", "the map of meaning", "|", "- item", "| a | b |", "```", "## Заголовок",
                         "---", "> quote line", "1. first", "word", "", "", "  "]),
        st.text(alphabet="ab .|#-`>\n", max_size=30),
    ),
    max_size=80,
).map("\n".join)


@settings(max_examples=150, deadline=None)
@given(markdownish)
def test_chunks_are_ordered_slices_within_the_budget_that_keep_every_word(text: str) -> None:
    chunks = CHUNKER.split(text)
    pos = 0
    for c in chunks:
        assert c.start >= pos and text[c.start : c.start + len(c.text)] == c.text and c.text.strip() == c.text
        pos = c.start + len(c.text)
        assert CHUNKER.cost(c.text) <= CHUNKER.room * SLACK or " " not in c.text.strip()
    kept = " ".join(c.text for c in chunks)
    rule = re.compile(r"^[ \t]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
    for line in text.split("\n"):
        if rule.match(line):
            continue
        for word in re.findall(r"[^\W_]+", line):
            assert word in kept


def test_a_long_code_block_split_at_a_line_with_trailing_spaces_keeps_no_space() -> None:
    """Hypothesis found it: a fenced block too big for one passage, split after «>>>>> »."""
    line = "река течёт к мосту.\n"
    text = "```\n" + line * 9 + ">>>>> \n   \n" + line + line.rstrip("\n")
    chunks = CHUNKER.split(text)
    assert len(chunks) == 2
    for c in chunks:
        assert c.text.strip() == c.text and text[c.start : c.start + len(c.text)] == c.text
    assert chunks[0].text.endswith(">>>>>")


NOTE = """---
aliases:
  - Daily notes
description: How to open a note for today.
---
Intro: the plugin opens today's note.

## Settings

### Folder

Where new daily notes go.

## Templates
### Only a heading here
#### And a subheading with text

Text under the subheading.
"""


def test_plain_note_sections_carry_their_heading_paths() -> None:
    note = parse_note(NOTE, "Plugins/Ежедневные заметки.md")
    pairs = note_turns(note)
    assert [t.uid for t, _ in pairs] == ["(top)#0", "Folder#0", "And a subheading with text#0"]
    assert [p for _, p in pairs] == [(), ("Settings", "Folder"), ("Templates", "Only a heading here", "And a subheading with text")]
    turns = [t for t, _ in pairs]
    hs = heads(note, turns, [p for _, p in pairs])
    assert hs[0] == (HEAD_TITLE, "Ежедневные заметки\nDaily notes\nHow to open a note for today.")
    assert hs[1] == (HEAD_PATH, "Ежедневные заметки › Settings › Folder")
    assert hs[2] == (HEAD_PATH, "Ежедневные заметки › Templates › Only a heading here › And a subheading with text")


def test_a_conversation_has_one_head_its_title_without_the_repeated_alias() -> None:
    text = (
        "---\nnexus: nexus-ai-chat-importer\nplugin_version: \"1.2.0\"\nprovider: chatgpt\naliases: Квас дома\n"
        "conversation_id: c1\ncreate_time: 24.07.2025 at 14:45\nupdate_time: 24.07.2025 at 14:50\n---\n"
        "# Title: Квас дома\n\nCreated: 24.07.2025 at 14:45\nLast Updated: 24.07.2025 at 14:50\n\n\n\n"
        ">[!nexus_user] **User** - 24.07.2025 at 14:45\n> Как сварить квас?\n<!-- UID: u1 -->\n\n\n\n"
        ">[!nexus_agent] **Assistant** - 24.07.2025 at 14:46\n> Нужны ржаные сухари.\n<!-- UID: u2 -->\n\n---\n"
    )
    note = parse_note(text, "Nexus/Kvas doma.md")
    assert note.conversation is not None and len(note.conversation.turns) == 2
    hs = heads(note, list(note.conversation.turns))
    assert hs == [(HEAD_CONVERSATION, "Квас дома"), (BODY, "")]


def test_turn_passages_put_the_head_after_the_body() -> None:
    out = turn_passages(CHUNKER, "The river flows under the bridge.", (HEAD_PATH, "Note › Rivers"))
    assert [(p.kind, p.start, p.text) for p in out] == [
        (BODY, 0, "The river flows under the bridge."),
        (HEAD_PATH, 0, "Note › Rivers"),
    ]
    assert [p.kind for p in turn_passages(CHUNKER, "Text of a turn.", (BODY, ""))] == [BODY]


# -- in the index ---------------------------------------------------------------------------------
def _vault(tmp_path: Path) -> Path:
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "Plugins").mkdir()
    (vault / "Plugins" / "Ежедневные заметки.md").write_text(NOTE.replace("How to open", "Как открыть заметку"), encoding="utf-8")
    (vault / "Plugins" / "Граф.md").write_text("Граф показывает связи между заметками.\n\n## Фильтры\n\nСкрыть теги.\n", encoding="utf-8")
    return vault


def _heads(index_dir: Path) -> list[tuple[str, int, str]]:
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        return sorted(idx.db.execute(
            "SELECT t.uid, p.kind, p.text FROM passages p JOIN turns t ON t.id = p.turn_id WHERE p.kind != 0"
        ).fetchall())


def test_a_note_is_found_by_its_alias_and_heading_path_in_both_legs(tmp_path: Path) -> None:
    vault = _vault(tmp_path)
    run_index(vault, tmp_path / "ix", FakeEmbedder())
    with open_index(tmp_path / "ix", readonly=True, notify=lambda m: None) as idx:
        for mode in ("keyword", "semantic", "hybrid"):
            hits = search(idx, "daily notes", mode=mode, k=1, embedder=FakeEmbedder())
            assert hits and hits[0].note == "Plugins/Ежедневные заметки.md", mode
            assert "daily" not in hits[0].snippet.lower()  # the snippet is the note's text, not its head
        hits = search(idx, "граф фильтры", mode="keyword", k=1)
        assert hits[0].uid == "Фильтры#0"


def test_renaming_a_note_renews_its_heads_and_embeds_nothing_else(tmp_path: Path) -> None:
    vault = _vault(tmp_path)
    run_index(vault, tmp_path / "ix", FakeEmbedder())
    (vault / "Plugins" / "Граф.md").rename(vault / "Plugins" / "Граф связей.md")
    emb = FakeEmbedder()
    run_index(vault, tmp_path / "ix", emb)
    assert sorted(emb.embedded) == ["Граф связей", "Граф связей › Фильтры"]
    assert ("Фильтры#0", HEAD_PATH, "Граф связей › Фильтры") in _heads(tmp_path / "ix")
    fresh = tmp_path / "fresh"
    run_index(vault, fresh, FakeEmbedder())
    assert snapshot(fresh)["passages"] == snapshot(tmp_path / "ix")["passages"]


def test_an_index_cut_by_another_chunker_version_is_recut_once_reusing_vectors(tmp_path: Path) -> None:
    vault = _vault(tmp_path)
    run_index(vault, tmp_path / "ix", FakeEmbedder())
    before = snapshot(tmp_path / "ix")
    with open_index(tmp_path / "ix", notify=lambda m: None) as idx:  # as an index of the last version looks
        idx.db.execute("BEGIN IMMEDIATE")
        idx.db.execute("DELETE FROM passages WHERE kind != 0")
        idx.db.execute("DELETE FROM meta WHERE key = 'chunker'")
        idx.db.execute("COMMIT")
    emb = FakeEmbedder()
    report = run_index(vault, tmp_path / "ix", emb)
    assert report.full and any("re-reading every note" in w for w in report.warnings)
    assert emb.embedded == []  # the heads' vectors were still stored (content-addressed)
    assert snapshot(tmp_path / "ix") == before
    again = FakeEmbedder()
    assert not run_index(vault, tmp_path / "ix", again).full and again.embedded == []


def test_keyword_rows_in_another_script_than_the_query_count_less_in_fusion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_module, "KEYWORD_SPECIFICITY", 0.0)  # (tested on its own below)
    vault = _vault(tmp_path)
    (vault / "Graph view.md").write_text("The graph view shows how your notes link to each other.\n", encoding="utf-8")
    (vault / "Plugins" / "Граф.md").write_text("Граф (graph view) показывает связи между заметками.\n", encoding="utf-8")
    run_index(vault, tmp_path / "ix", FakeEmbedder())
    with open_index(tmp_path / "ix", readonly=True, notify=lambda m: None) as idx:
        rows = keyword_turns(idx.db, KeywordQuery.parse("graph view"), Filters(), 10)
        notes = dict(idx.db.execute("SELECT t.id, n.path FROM turns t JOIN notes n ON n.id = t.note_id").fetchall())
        weight = {notes[r.turn_id]: r.weight for r in rows}
    assert weight == {"Graph view.md": 1.0, "Plugins/Граф.md": CROSS_LANGUAGE}


def test_a_head_of_several_names_is_also_a_passage_per_name() -> None:
    """An English alias of a Russian page is embedded on its own too, not only drowned in the Russian head."""
    head = (HEAD_TITLE, "Ежедневные заметки\nDaily notes\nКак открыть заметку на сегодня.")
    out = turn_passages(CHUNKER, "Текст раздела.", head)
    assert [(p.kind, p.text) for p in out] == [
        (BODY, "Текст раздела."),
        (HEAD_TITLE, head[1]),
        (HEAD_TITLE, "Ежедневные заметки"),
        (HEAD_TITLE, "Daily notes"),
        (HEAD_TITLE, "Как открыть заметку на сегодня."),
    ]
    single = turn_passages(CHUNKER, "Текст.", (HEAD_PATH, "Заметка › Раздел"))
    assert [p.text for p in single if p.kind != BODY] == ["Заметка › Раздел"]


def test_keyword_rows_matching_only_words_common_in_their_language_count_less_in_fusion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """"make" is in most English notes: a row holding only it is weak evidence; "kvass" is rare."""
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    for i, text in enumerate(["We make tea every morning.", "Make a plan for the week.", "They make music together.",
                              "I make lists of books to read.", "How to make a good first impression."]):
        (vault / f"en{i}.md").write_text(text + "\n", encoding="utf-8")
    (vault / "kvass.md").write_text("Kvass is fermented from rye bread, water and a little sugar.\n", encoding="utf-8")
    (vault / "ru.md").write_text("Квас делают из ржаного хлеба, воды и сахара.\n", encoding="utf-8")
    run_index(vault, tmp_path / "ix", FakeEmbedder())

    def weights(power: float) -> dict[str, float]:
        monkeypatch.setattr(search_module, "KEYWORD_SPECIFICITY", power)
        with open_index(tmp_path / "ix", readonly=True, notify=lambda m: None) as idx:
            rows = keyword_turns(idx.db, KeywordQuery.parse("how to make kvass"), Filters(), 10)
            notes = dict(idx.db.execute("SELECT t.id, n.path FROM turns t JOIN notes n ON n.id = t.note_id").fetchall())
            return {notes[r.turn_id]: r.weight for r in rows}

    plain, specific = weights(0.0), weights(1.0)
    assert set(plain) == set(specific) == {"kvass.md", *(f"en{i}.md" for i in range(5))}
    assert plain["kvass.md"] == 1.0  # the best coverage
    for i in range(5):  # relative to the row holding the rare word, a "make" row counts less
        assert 0 < specific[f"en{i}.md"] / specific["kvass.md"] < 0.6 * plain[f"en{i}.md"] / plain["kvass.md"], i


def test_a_russian_query_word_also_finds_words_of_its_family_by_stem_after_exact_forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """«синхронизировать» (verb) and «синхронизация» (noun) have different lemmas; the stem joins them."""
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "noun.md").write_text("Синхронизация заметок между устройствами идёт в фоне.\n", encoding="utf-8")
    (vault / "verb.md").write_text("Чтобы синхронизировать заметки, войдите в аккаунт.\n", encoding="utf-8")
    (vault / "other.md").write_text("Заметки лежат в папке хранилища.\n", encoding="utf-8")
    (vault / "short.md").write_text("Синий цвет и синяя папка.\n", encoding="utf-8")
    run_index(vault, tmp_path / "ix", FakeEmbedder())

    def found(query: str) -> list[str]:
        with open_index(tmp_path / "ix", readonly=True, notify=lambda m: None) as idx:
            return [h.note for h in search(idx, query, mode="keyword", k=10)]

    assert found("синхронизировать") == ["verb.md", "noun.md"]  # the exact lemma first
    assert found("синхронизация") == ["noun.md", "verb.md"]
    assert found("синий") == ["short.md"]  # under STEM_CHARS letters: lemmas only
    kq = KeywordQuery.parse("sync notes синхронизировать")
    assert [v for v in kq.words if any(x.endswith("*") for x in v)] == [("синхронизировать", "синхрониз*")]  # Russian only
    monkeypatch.setattr(search_module, "STEM_CHARS", 0)
    assert found("синхронизировать") == ["verb.md"]
