"""queries.search over a real index (real parser, pipeline, SQLite, FAISS) of the planted vault.

Vectors come from the FakeEmbedder (bag-of-words hashing) so these tests are fast; semantic
quality with the real model is measured in tests/eval/. Expected results are derived from the
indexed turn texts and the generator's truth, never typed in.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from index_helpers import append_turns, run_index

import indexer.vectors as vectors_mod
import queries.search as search_mod
from indexer import textproc
from indexer.embed import FakeEmbedder
from indexer.errors import ModelMismatch
from indexer.passages import HEAD_CONVERSATION
from indexer.store import open_index
from queries.results import make_snippet
from queries.search import (
    Filters,
    KeywordQuery,
    SearchError,
    _Row,
    parse_when,
    rrf,
    search,
    similar,
)

REPO = Path(__file__).resolve().parent.parent
DEMO_NOTES = REPO / "interfaces" / "demo_vault" / "Заметки"
HIT_KEYS = ["uid", "conversation_id", "note", "title", "role", "model", "time", "score", "snippet", "uri", "passage",
            "highlights"]


@pytest.fixture(scope="session")
def search_index(planted_source: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """The planted vault plus three plain notes, indexed once with the fake embedder."""
    src, truth = planted_source
    base = tmp_path_factory.mktemp("search")
    vault = base / "vault"
    shutil.copytree(src, vault)
    shutil.copytree(DEMO_NOTES, vault / "Заметки")
    # a third plain note whose section shares a UID ("Начало#0") with «Язык токенов»
    (vault / "Заметки" / "Черновик.md").write_text(
        "## Начало\n\nЧерновик о том, как образы переходят из разговора в разговор.\n", encoding="utf-8"
    )
    run_index(vault, base / "index", FakeEmbedder())
    return vault, base / "index", truth


@pytest.fixture
def idx(search_index: tuple[Path, Path, dict]):
    with open_index(search_index[1], readonly=True, notify=lambda m: None) as index:
        yield index


def turns_by_uid(index) -> dict[str, dict]:
    rows = index.db.execute(
        """SELECT t.uid, t.conversation_id, t.role, t.time, t.text, n.path, c.provider
           FROM turns t JOIN notes n ON n.id = t.note_id LEFT JOIN conversations c ON c.id = t.conversation_id"""
    ).fetchall()
    keys = ("uid", "conversation_id", "role", "time", "text", "path", "provider")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def has_lemma(text: str, lemma: str) -> bool:
    return lemma in textproc.lemmas(text)


def has_lemma_phrase(text: str, phrase: list[str]) -> bool:
    lem = textproc.lemmas(text)
    return any(lem[i : i + len(phrase)] == phrase for i in range(len(lem)))


# ------------------------------------------------------------------------------------ keyword


def test_keyword_finds_every_inflection(idx) -> None:
    turns = turns_by_uid(idx)
    expected = {u for u, t in turns.items() if has_lemma(t["text"], "метафора")}
    hits = search(idx, "метафору", mode="keyword", k=1000, collapse=False)
    found = {h.uid for h in hits}
    assert expected <= found
    # anything else was found by its title: the first turn of a conversation named with the word
    for h in hits:
        if h.uid not in expected:
            assert has_lemma(h.title, "метафора"), h
    forms = Counter(w.lower() for u in expected for w, _, _ in textproc.tokenize(turns[u]["text"])
                    if textproc.lemma(w) == "метафора")
    assert len(forms) >= 2, forms  # the planted vault really has several forms, all found


def test_keyword_highlights_the_matched_forms(idx) -> None:
    hits = search(idx, "метафору", mode="keyword", k=5)
    assert hits
    for h in hits:
        assert h.highlights or has_lemma(h.title, "метафора")  # else found by its title alone
        for start, end in h.highlights:
            assert textproc.lemma(h.snippet[start:end]) == "метафора"


def test_quoted_phrase_matches_only_as_a_phrase(idx) -> None:
    turns = turns_by_uid(idx)
    phrase = textproc.lemmas("карта смысла")
    expected = {u for u, t in turns.items() if has_lemma_phrase(t["text"], phrase)}
    loose = {u for u, t in turns.items() if all(has_lemma(t["text"], w) for w in phrase)}
    assert expected, "the planted vault has the phrase"
    hits = search(idx, '"карта смысла"', mode="keyword", k=1000, collapse=False)
    assert {h.uid for h in hits} == expected
    # the unquoted query also returns turns where the two words are apart
    unquoted = {h.uid for h in search(idx, "карта смысла", mode="keyword", k=1000, collapse=False)}
    assert loose <= unquoted


def test_all_words_rank_before_some_words(idx) -> None:
    turns = turns_by_uid(idx)
    hits = search(idx, "метафора карта", mode="keyword", k=1000, collapse=False)
    both = [has_lemma(turns[h.uid]["text"], "метафора") and has_lemma(turns[h.uid]["text"], "карта") for h in hits]
    assert any(both) and not all(both)
    first_partial = both.index(False)
    assert all(both[:first_partial]) and not any(both[first_partial:])


def test_function_words_alone_are_not_ranked_on(idx) -> None:
    plain = search(idx, "метафора", mode="keyword", k=1000, collapse=False)
    with_stops = search(idx, "и метафора в", mode="keyword", k=1000, collapse=False)
    assert [h.uid for h in plain] == [h.uid for h in with_stops]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list('аб метафора"*()-:^NEAROTD ёЁ«»\'.,')), min_size=1, max_size=30))
def test_any_query_text_is_safe_fts_syntax(idx, query: str) -> None:
    """Quotes, operators and punctuation never reach FTS5 as syntax: no SQLite error, ever."""
    if not query.strip():
        with pytest.raises(SearchError):
            search(idx, query, mode="keyword")
        return
    if not KeywordQuery.parse(query):
        with pytest.raises(SearchError, match="no words to match"):
            search(idx, query, mode="keyword")
        return
    for h in search(idx, query, mode="keyword", k=3):
        assert h.uid


# ------------------------------------------------------------------------------------ filters


def test_role_filter(idx) -> None:
    for role in ("user", "assistant"):
        hits = search(idx, "метафора", mode="hybrid", k=50, role=role, collapse=False)
        assert hits and {h.role for h in hits} == {role}


def test_time_filters_are_inclusive_days(idx) -> None:
    turns = turns_by_uid(idx)
    times = sorted(t["time"] for t in turns.values() if t["time"])
    day = times[len(times) // 2][:10]
    hits = search(idx, "метафора", mode="keyword", k=1000, since=day, until=day, collapse=False)
    expected = {u for u, t in turns.items() if (t["time"] or "").startswith(day) and has_lemma(t["text"], "метафора")}
    assert {h.uid for h in hits} == expected
    later = search(idx, "метафора", mode="keyword", k=1000, since=day, collapse=False)
    assert all(h.time >= day for h in later)


def test_provider_conversation_and_path_filters(idx, search_index) -> None:
    truth = search_index[2]
    claude = {c["conversation_id"] for c in truth["conversations"] if c["provider"] == "claude"}
    hits = search(idx, "model", mode="keyword", k=100, provider="Claude", collapse=False)
    assert hits and {h.conversation_id for h in hits} <= claude
    conv = truth["conversations"][0]
    hits = search(idx, "модель", mode="hybrid", k=100, conversation=conv["conversation_id"], collapse=False)
    assert hits and {h.conversation_id for h in hits} == {conv["conversation_id"]}
    folder = conv["path"].rsplit("/", 1)[0] + "/"
    hits = search(idx, "модель", mode="semantic", k=20, path_prefix=folder)
    assert hits and all(h.note.startswith(folder) for h in hits)


def test_plain_notes_are_searchable_and_tag_filter(idx) -> None:
    hits = search(idx, "карта смысла", mode="hybrid", k=50, tag="идеи", collapse=False)
    assert hits
    assert {h.role for h in hits} == {"note"}
    assert all(h.note.startswith("Заметки/") for h in hits)
    assert all(h.conversation_id == f"note:{h.note}" for h in hits)
    assert search(idx, "карта смысла", mode="hybrid", k=50, tag="#идеи/образы")
    assert not search(idx, "карта смысла", mode="keyword", k=50, tag="нет-такого-тега")


def test_collapse_limits_results_per_conversation(idx) -> None:
    free = search(idx, "модель", mode="keyword", k=40, collapse=False)
    assert max(Counter(h.conversation_id for h in free).values()) > 2
    collapsed = search(idx, "модель", mode="keyword", k=40)
    assert max(Counter(h.conversation_id for h in collapsed).values()) <= 2
    one = search(idx, "модель", mode="keyword", k=40, collapse=1)
    assert max(Counter(h.conversation_id for h in one).values()) == 1


def test_an_english_clitic_reads_as_its_base_word_or_as_a_function_word() -> None:
    assert KeywordQuery.parse("Obsidian's vault").words == (("obsidian's", "obsidian"), ("vault",))
    assert KeywordQuery.parse("grandma’s recipe").words[0] == ("grandma’s", "grandma")
    assert KeywordQuery.parse("I'm reading what it's about, don't sync").words == (("read",), ("sync",))
    assert KeywordQuery.parse("rock'n'roll").words[0][0] == "rock'n'roll"  # not a clitic: as it was


def test_english_function_words_match_the_russian_ones_on_the_stop_list() -> None:
    """«между» and «один» are function words of a Russian query; "between" and "one" of an
    English one (``QUERY_STOP``), so they neither rank a passage nor count in its coverage."""
    for ru, en in (("между", "between"), ("один", "one")):
        assert textproc.is_stop(textproc.lemma(ru)) and not textproc.is_stop(en)  # the gap covered
        assert [w[0] for w in KeywordQuery.parse(f"sync {en} devices").words] == ["sync", "device"]
    assert KeywordQuery.parse('"one note"').phrases == (("one", "note"),)  # quoted: still a phrase
    assert KeywordQuery.parse("between").words == (("between",),)  # nothing else: searched for


def test_an_english_word_the_lemmatiser_does_not_know_reads_in_both_numbers(tmp_path: Path) -> None:
    """The index keeps "plugins" as its own lemma (simplemma does not know the word): a query for
    "plugin" must find it, and "plugins" the singular; known words keep their one lemma."""
    assert textproc.lemma("plugins") == "plugins"  # the gap this covers
    assert KeywordQuery.parse("plugin hotkeys").words == (("plugin", "plugins"), ("hotkeys", "hotkey"))
    assert KeywordQuery.parse("notes about news").words == (("note",), ("news",))  # known: as they were
    assert KeywordQuery.parse("css").words == (("css",),)  # (short or -ss: no other number)
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Plugins.md").write_text("# Community\n\nThree community plugins sync my tasks.\n", encoding="utf-8")
    (vault / "One.md").write_text("# Single\n\nThe calendar plugin shows my week.\n", encoding="utf-8")
    run_index(vault, tmp_path / "index", FakeEmbedder())
    with open_index(tmp_path / "index", readonly=True) as index:
        for query in ("plugin", "plugins"):
            assert {h.note for h in search(index, query, mode="keyword")} == {"Plugins.md", "One.md"}


def _linked_vault(tmp_path: Path) -> Path:
    """A hub note whose lines say what two other pages are for, in words those pages lack."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Plugins.md").write_text(
        "# Plugins\n\n- [[Workspaces]]: save window layouts and switch between them.\n"
        "- [[Starred|Stars]]: keep favourite notes close. ![[Workspaces]] [[Plugins#Plugins|here]]\n",
        encoding="utf-8",
    )
    (vault / "Workspaces.md").write_text("# Workspaces\n\nA workspace remembers which panes are open.\n", encoding="utf-8")
    (vault / "Bookmarks.md").write_text("---\naliases: [Starred]\n---\nBookmarks pin items you use often.\n", encoding="utf-8")
    (vault / "Bread.md").write_text("# Bread\n\nBread needs flour, water and salt.\n", encoding="utf-8")
    run_index(vault, tmp_path / "index", FakeEmbedder())
    return tmp_path / "index"


def test_a_note_linked_from_a_strong_result_shares_its_score(tmp_path: Path, monkeypatch) -> None:
    with open_index(_linked_vault(tmp_path), readonly=True, notify=lambda m: None) as index:
        db = index.db
        first = {path: (tid, pid) for path, tid, pid in db.execute(
            """SELECT n.path, t.id, min(p.id) FROM notes n JOIN turns t ON t.note_id = n.id AND t.position = 0
               JOIN passages p ON p.turn_id = t.id AND p.kind = 0 GROUP BY n.path""")}
        hub, bread = _Row(*first["Plugins.md"], 0.3), _Row(*first["Bread.md"], 0.1)
        lifted = {r.turn_id: r.score for r in search_mod._link_credit(db, [hub, bread], Filters(), KeywordQuery.parse("x"))}
        share = search_mod.LINK_CREDIT * 0.3 / 2  # two targets: the link and the alias (not the embed, not itself)
        assert lifted == pytest.approx({
            first["Plugins.md"][0]: 0.3, first["Workspaces.md"][0]: share, first["Bookmarks.md"][0]: share,
            first["Bread.md"][0]: 0.1,
        })
        monkeypatch.setattr(search_mod, "LINK_CREDIT", 0)
        assert [r.score for r in search_mod._link_credit(db, [_Row(*first["Plugins.md"], 0.3)], Filters(), KeywordQuery.parse("x"))] == [0.3]
        # hybrid search lifts the linked page; keyword mode stays literal
        found = {h.note: h.score for h in search(index, "switch layouts", mode="hybrid", embedder=FakeEmbedder())}
        monkeypatch.setattr(search_mod, "LINK_CREDIT", 0.7)
        lifted_hits = {h.note: h.score for h in search(index, "switch layouts", mode="hybrid", embedder=FakeEmbedder())}
        assert lifted_hits["Workspaces.md"] > found["Workspaces.md"]
        assert lifted_hits["Bread.md"] == pytest.approx(found["Bread.md"])
        assert [h.note for h in search(index, "switch layouts", mode="keyword")] == ["Plugins.md"]


def _nexus(vault: Path, name: str, provider: str, when: str, conv: str, text: str) -> None:
    (vault / "Nexus").mkdir(exist_ok=True)
    (vault / "Nexus" / name).write_text(
        f"---\nnexus: nexus-ai-chat-importer\nplugin_version: \"1.2.0\"\nprovider: {provider}\n"
        f"conversation_id: {conv}\ncreate_time: {when}\n---\n\n# Title: {name[:-3]}\n\n"
        f">[!nexus_user] **User** - {when}\n> {text}\n<!-- UID: {conv}-u -->\n", encoding="utf-8")


def test_a_long_lived_reader_resolves_links_to_a_renamed_note(tmp_path: Path, monkeypatch) -> None:
    index_dir = _linked_vault(tmp_path)
    vault = tmp_path / "vault"

    def scores(index) -> dict[str, float]:
        return {h.note: h.score for h in search(index, "save window layouts", embedder=FakeEmbedder())}

    with open_index(index_dir, readonly=True, notify=lambda m: None) as reader:
        assert "Workspaces.md" in scores(reader)  # (links resolved once for this connection)
        (vault / "Pages").mkdir()
        (vault / "Workspaces.md").rename(vault / "Pages" / "Workspaces.md")  # a path updated in place
        run_index(vault, index_dir, FakeEmbedder())
        lifted = scores(reader)
        monkeypatch.setattr(search_mod, "LINK_CREDIT", 0)
        assert lifted["Pages/Workspaces.md"] > scores(reader)["Pages/Workspaces.md"]


@pytest.mark.parametrize(
    "filters",
    [
        {"path_prefix": "Hub/"}, {"tag": "hub"}, {"conversation": "conv-hub"}, {"role": "user"},
        {"since": "2024-01-01", "until": "2024-12-31"}, {"provider": "chatgpt"},
    ],
    ids=["path", "tag", "conversation", "role", "time", "provider"],
)
def test_a_linked_note_is_lifted_only_when_it_passes_the_filters_and_holds_the_phrase(tmp_path: Path, filters) -> None:
    """Notes credited by a link are results like any other: the same filters, the same phrases."""
    vault = tmp_path / "vault"
    (vault / "Hub").mkdir(parents=True)
    (vault / "Hub" / "Index.md").write_text(
        "---\ntags: [hub]\n---\n# Index\n\nSave window layouts: see [[Workspaces]] and [[Later talk]].\n",
        encoding="utf-8")
    (vault / "Workspaces.md").write_text("# Workspaces\n\nA workspace remembers which panes are open.\n", encoding="utf-8")
    _nexus(vault, "Hub talk.md", "chatgpt", "01.03.2024 at 10:00", "conv-hub",
           "Save window layouts: see [[Workspaces]] and [[Later talk]].")
    _nexus(vault, "Later talk.md", "claude", "01.06.2025 at 10:00", "conv-later", "Bread needs flour and salt.")
    run_index(vault, tmp_path / "index", FakeEmbedder())
    query = "save window layouts"
    with open_index(tmp_path / "index", readonly=True, notify=lambda m: None) as index:
        everything = {h.note for h in search(index, query, mode="hybrid", embedder=FakeEmbedder())}
        assert {"Workspaces.md", "Nexus/Later talk.md"} <= everything  # lifted when nothing filters them
        hits = search(index, query, mode="hybrid", embedder=FakeEmbedder(), **filters)
        where, params = search_mod.make_filters(**filters).where()
        kept = {uid for (uid,) in index.db.execute(
            f"""SELECT t.uid FROM turns t JOIN notes n ON n.id = t.note_id
                LEFT JOIN conversations c ON c.id = t.conversation_id WHERE {where}""", params)}
        assert hits and all(h.uid in kept for h in hits), [h.note for h in hits]
        phrase = search(index, '"window layouts"', mode="hybrid", embedder=FakeEmbedder())
        assert {h.note for h in phrase} == {"Hub/Index.md", "Nexus/Hub talk.md"}


def test_a_plain_note_gives_one_result_by_default(idx) -> None:
    # a content word held by several sections of one plain note (found in the index, not typed in)
    sections: dict[tuple[str, str], set[int]] = {}
    for conv, tid, lemmas in idx.db.execute(
        """SELECT t.conversation_id, t.id, f.lemmas FROM turns t JOIN passages p ON p.turn_id = t.id
           JOIN passage_fts f ON f.rowid = p.id WHERE t.role = 'note'"""
    ):
        for lemma in set(lemmas.split()):
            if lemma.isalpha() and len(lemma) > 3 and not textproc.is_stop(lemma):
                sections.setdefault((conv, lemma), set()).add(tid)
    (note, word), _ = max(sections.items(), key=lambda kv: (len(kv[1]), kv[0]))
    assert note.startswith("note:") and len(sections[(note, word)]) >= 2
    free = search(idx, word, mode="keyword", k=100, collapse=False)
    assert sum(h.conversation_id == note for h in free) >= 2
    per_note = Counter(h.conversation_id for h in search(idx, word, mode="keyword", k=100) if h.role == "note")
    assert per_note[note] == 1 and max(per_note.values()) == 1
    two = Counter(h.conversation_id for h in search(idx, word, mode="keyword", k=100, collapse=2))
    assert two[note] == 2


@pytest.mark.parametrize(
    ("value", "end", "expected"),
    [
        ("2025-03-14", False, "2025-03-14T00:00:00"),
        ("2025-03-14", True, "2025-03-15T00:00:00"),
        ("2025-03", True, "2025-04-01T00:00:00"),
        ("2025-12", True, "2026-01-01T00:00:00"),
        ("2025", False, "2025-01-01T00:00:00"),
        ("14.03.2025", False, "2025-03-14T00:00:00"),
        ("2025-03-14T10:30", False, "2025-03-14T10:30:00"),
    ],
)
def test_parse_when(value: str, end: bool, expected: str) -> None:
    assert parse_when(value, end=end) == expected


@pytest.mark.parametrize("bad", ["yesterday-ish", "2025-13-01", "32.01.2025", "soon"])
def test_parse_when_rejects_junk(bad: str) -> None:
    with pytest.raises(SearchError, match="cannot read the date"):
        parse_when(bad)


@settings(deadline=None)
@given(st.dates(), st.dates())
def test_since_until_bounds_are_ordered(a, b) -> None:
    lo, hi = parse_when(a.isoformat()), parse_when(b.isoformat(), end=True)
    assert (lo < hi) == (a <= b)


# ----------------------------------------------------------------------------- semantic, hybrid


def test_semantic_finds_a_passage_by_its_own_text(idx, monkeypatch) -> None:
    monkeypatch.setattr(search_mod, "TITLE_PRIOR", 0.0)  # raw cosines: a passage's own text scores 1
    monkeypatch.setattr(search_mod, "OTHER_SCRIPT", 0.0)
    rows = idx.db.execute(  # (a conversation's title is a prior for its turns, not a passage: see below)
        "SELECT p.text, t.uid FROM passages p JOIN turns t ON t.id = p.turn_id WHERE p.kind != ?", (HEAD_CONVERSATION,)
    ).fetchall()
    for text, uid in rows[::17]:
        hits = search(idx, text, mode="semantic", k=3, collapse=False)
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        top = [h for h in hits if h.score > 0.9999]
        assert uid in {h.uid for h in top}  # (identical passages tie at 1.0)


def test_a_conversation_title_lifts_its_turns_but_is_never_a_result_of_its_own(idx, monkeypatch) -> None:
    heads = idx.db.execute(
        "SELECT p.text, t.conversation_id FROM passages p JOIN turns t ON t.id = p.turn_id WHERE p.kind = ?",
        (HEAD_CONVERSATION,),
    ).fetchall()
    assert heads
    lifted = 0
    for title, conv in heads:
        texts = {r[0] for r in idx.db.execute("SELECT text FROM turns WHERE conversation_id = ?", (conv,))}
        assert title not in texts  # the title is no turn's text: only a prior can find these turns

        def best_rank(title: str = title, conv: str = conv) -> int:
            hits = search(idx, title, mode="semantic", k=50, collapse=False)
            return next((i for i, h in enumerate(hits) if h.conversation_id == conv), 99)

        with_prior = best_rank()
        monkeypatch.setattr(search_mod, "TITLE_PRIOR", 0.0)
        without = best_rank()
        monkeypatch.undo()
        assert with_prior <= without
        lifted += with_prior < without
    assert lifted  # (some conversations are first even without their title)


def test_hybrid_contains_the_best_of_each_mode(idx) -> None:
    query = "карта смысла для записей"
    kw = search(idx, query, mode="keyword", k=5)
    sem = search(idx, query, mode="semantic", k=5)
    hyb = {h.uid for h in search(idx, query, mode="hybrid", k=10)}
    assert kw[0].uid in hyb and sem[0].uid in hyb
    scores = [h.score for h in search(idx, query, mode="hybrid", k=10)]
    assert scores == sorted(scores, reverse=True)


def test_a_quoted_phrase_in_hybrid_mode_must_be_in_every_result(idx) -> None:
    turns = turns_by_uid(idx)
    phrase = textproc.lemmas("карта смысла")
    with_phrase = {u for u, t in turns.items() if has_lemma_phrase(t["text"], phrase)}
    hits = search(idx, 'где была «карты смысла»', mode="hybrid", k=50, collapse=False)
    assert hits and {h.uid for h in hits} <= with_phrase
    assert len(hits) == len(with_phrase)  # every turn holding it, by meaning or by words
    loose = search(idx, "где была карты смысла", mode="hybrid", k=50, collapse=False)
    assert {h.uid for h in loose} - with_phrase  # unquoted, other turns come too


@pytest.mark.parametrize("filters", [{}, {"role": "user"}, {"since": "2025-03", "until": "2025-09"}])
def test_hybrid_legs_in_parallel_equal_legs_in_sequence(idx, filters, monkeypatch) -> None:
    queries = ["карта смысла для записей", "мост между мирами", '"язык токенов"', "drift of meaning"]
    monkeypatch.setattr(search_mod, "PARALLEL_LEGS", False)
    alone = [search(idx, q, k=10, **filters) for q in queries]
    monkeypatch.setattr(search_mod, "PARALLEL_LEGS", True)
    threads = []
    real = search_mod._semantic_leg

    def leg(*args):
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(search_mod, "_semantic_leg", leg)
    together = [search(idx, q, k=10, **filters) for q in queries]
    assert together == alone and any(alone)
    assert threads and all(t is not threading.main_thread() and not t.is_alive() for t in threads)


@pytest.mark.parametrize(
    "filters",
    [{"role": "user"}, {"since": "2025-03", "until": "2025-06"}, {"path_prefix": "Заметки"}, {"tag": "идеи"}],
)
def test_listing_allowed_vectors_and_post_filtering_agree(idx, search_index, filters, monkeypatch) -> None:
    """Both ways of filtering a semantic search (an id selector, or a deeper search whose
    excluded rows are dropped) return the same turns on an exact index."""
    conv = turns_by_uid(idx)[next(iter(turns_by_uid(idx)))]["conversation_id"]
    queries = ["карта смысла", "мост между двумя мирами", "language of tokens"]
    runs = {}
    for share in (1.0, 0.0):
        monkeypatch.setattr(search_mod, "SELECTIVE_SHARE", share)
        runs[share] = [
            [(h.uid, round(h.score, 5)) for h in search(idx, q, mode="semantic", k=8, collapse=False, **f)]
            for q in queries
            for f in (filters, {"conversation": conv})
        ]
    assert runs[1.0] == runs[0.0] and any(runs[1.0])


def test_an_error_in_the_semantic_leg_reaches_the_caller(idx, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(search_mod, "vector_turns", broken)
    before = set(threading.enumerate())
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        search(idx, "карта смысла", mode="hybrid")
    assert set(threading.enumerate()) <= before  # the leg's thread has ended


def test_vector_hits_map_to_turns_from_the_index_alone(idx) -> None:
    plan = " ".join(
        str(r[-1])
        for r in idx.db.execute(
            "EXPLAIN QUERY PLAN SELECT v.id, p.id, p.turn_id, p.kind, p.script FROM vectors v "
            "JOIN passages p ON p.hash = v.hash "
            "WHERE v.id IN (SELECT value FROM json_each(?))",
            ("[1, 2]",),
        )
    )
    assert "COVERING INDEX passages_lookup" in plan


def test_title_vectors_are_skipped_by_faiss_and_change_no_result(idx, monkeypatch) -> None:
    """Conversation titles stand for no turn: once a search came back short because titles were
    the nearest vectors, FAISS skips them, and the turns found are those found without that."""
    db = idx.db
    model = search_mod._index_model(idx)
    titles = db.execute(
        """SELECT v.id, v.vector FROM passages p JOIN vectors v ON v.hash = p.hash
           WHERE p.kind = ? AND NOT EXISTS (SELECT 1 FROM passages q WHERE q.hash = p.hash AND q.kind != ?)""",
        (HEAD_CONVERSATION, HEAD_CONVERSATION),
    ).fetchall()
    assert len(titles) > 3
    mean = np.stack([np.frombuffer(blob, dtype="<f4") for _, blob in titles]).mean(axis=0)
    queries = (mean / np.linalg.norm(mean)).reshape(1, -1)  # near every title: titles come first
    limit = 40  # (a first search of 80 vectors, out of some 280)
    returned: list[set[int]] = []
    real_knn = vectors_mod.knn

    def knn(*args, **kwargs):
        sims, vids = real_knn(*args, **kwargs)
        returned.append(set(vids.ravel().tolist()))
        return sims, vids

    monkeypatch.setattr(vectors_mod, "knn", knn)
    vindex = search_mod.vectors_of(idx)
    monkeypatch.setattr(search_mod, "TITLE_EXCLUSION", 0)
    plain = search_mod.vector_turns(db, vindex, queries, search_mod.Filters(), limit, model=model)
    asked_plain = len(returned)
    monkeypatch.setattr(search_mod, "TITLE_EXCLUSION", 1)
    search_mod._TITLE_VECTORS.clear()
    returned.clear()
    first = search_mod.vector_turns(db, vindex, queries, search_mod.Filters(), limit, model=model)
    assert returned[0] & {vid for vid, _ in titles}  # the first search still met titles ...
    assert len(returned) <= asked_plain
    returned.clear()
    again = search_mod.vector_turns(db, vindex, queries, search_mod.Filters(), limit, model=model)
    assert returned and not set().union(*returned) & {vid for vid, _ in titles}  # ... later ones never
    key = [(r.turn_id, round(r.score, 5)) for r in plain]
    assert len(plain) == limit and [(r.turn_id, round(r.score, 5)) for r in first] == key
    assert [(r.turn_id, round(r.score, 5)) for r in again] == key


def test_rrf_shares_ranks_between_equal_keyword_coverage() -> None:
    kw = [_Row(1, 1, 0.9, tie=True, level=0.5), _Row(2, 2, 0.8, tie=True, level=0.5), _Row(3, 3, 0.7, tie=True, level=0.2)]
    sem = [_Row(2, 2, 0.6), _Row(3, 3, 0.5), _Row(1, 1, 0.4)]
    fused = rrf(kw, sem, k=10)
    # 1 and 2 tie in keyword (rank 1.5 each); 2 is ahead in vectors, so 2 wins
    assert [r.turn_id for r in fused] == [2, 1, 3]


def test_hit_json_shape_and_uri(idx) -> None:
    hits = search(idx, "метафора", k=3)
    assert hits
    for h in hits:
        d = h.to_dict()
        assert list(d) == HIT_KEYS
        json.dumps(d, ensure_ascii=False)
        assert d["uri"].startswith("obsidian://open?vault=vault&file=")
        assert ".md" not in d["uri"] and "/" not in d["uri"].split("file=")[1]
    # highlights in the JSON point at the matched words of the snippet
    marked = [h.snippet[a:b].lower() for h in hits for a, b in h.to_dict()["highlights"]]
    assert marked and all(w.startswith("метафор") for w in marked)


# ------------------------------------------------------------------------------------ similar


def test_similar_excludes_itself_and_optionally_its_conversation(idx, search_index) -> None:
    truth = search_index[2]
    conv = truth["conversations"][1]
    uid = conv["turns"][0]["uid"]
    hits = similar(idx, uid, k=10, collapse=False)
    assert hits and uid not in {h.uid for h in hits}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    others = similar(idx, uid, k=10, other_conversations=True)
    assert others and conv["conversation_id"] not in {h.conversation_id for h in others}


def test_similar_finds_a_turn_that_repeats_a_sentence(idx) -> None:
    """The planted vault repeats sentences across turns: a turn's echoes share its sentences."""
    turns = turns_by_uid(idx)
    uid, turn = next((u, t) for u, t in turns.items() if t["role"] == "user")
    best = similar(idx, uid, k=1, collapse=False)[0]
    sentences = {s.strip() for s in turn["text"].replace("\n", " ").split(".") if len(s.strip()) > 20}
    assert any(s in turns[best.uid]["text"] for s in sentences)


def test_similar_unknown_and_ambiguous_uids(idx) -> None:
    with pytest.raises(SearchError, match="no turn with UID 'nope'"):
        similar(idx, "nope")
    plain = idx.db.execute("SELECT uid FROM turns WHERE role = 'note' GROUP BY uid HAVING count(*) > 1").fetchone()
    assert plain, "two plain notes have a section «Начало»"
    with pytest.raises(SearchError, match="CONVERSATION_ID:UID"):
        similar(idx, plain[0])
    conv = idx.db.execute("SELECT conversation_id FROM turns WHERE uid = ?", (plain[0],)).fetchone()[0]
    assert similar(idx, f"{conv}:{plain[0]}", k=2)


# ------------------------------------------------------------------------- errors, live index


def test_search_errors(idx) -> None:
    with pytest.raises(SearchError, match="the query is empty"):
        search(idx, "   ")
    with pytest.raises(SearchError, match="unknown role 'bot'"):
        search(idx, "x", role="bot")
    with pytest.raises(SearchError, match="is not before"):
        search(idx, "x", since="2025-05-01", until="2025-04-01")
    with pytest.raises(ModelMismatch, match="the index was built with fake/default"):
        search(idx, "x", mode="semantic", embedder=FakeEmbedder("other"))
    # keyword mode needs no model
    assert search(idx, "метафора", mode="keyword", embedder=FakeEmbedder("other"))


def test_empty_index_says_run_index_first(tmp_path: Path) -> None:
    open_index(tmp_path / "idx", create=True).close()
    with open_index(tmp_path / "idx", readonly=True) as index, pytest.raises(SearchError, match="run `tropegraph index` first"):
        search(index, "метафора")


def test_a_reader_sees_what_a_writer_commits(planted_vault: tuple[Path, dict], tmp_path: Path) -> None:
    """A long-lived read-only Index (e.g. a server) finds turns a watcher added after it opened."""
    vault, truth = planted_vault
    index_dir = tmp_path / "index"
    run_index(vault, index_dir, FakeEmbedder())
    with open_index(index_dir, readonly=True, notify=lambda m: None) as reader:
        before = search(reader, "дописанная реплика", mode="keyword", k=5)
        search(reader, "дописанная реплика", mode="semantic", k=5)  # loads FAISS
        note = vault / truth["conversations"][0]["path"]
        texts = append_turns(note, 2)
        run_index(vault, index_dir, FakeEmbedder())
        after_kw = search(reader, "дописанная реплика", mode="keyword", k=5)
        after_sem = search(reader, texts[1], mode="semantic", k=1, collapse=False)
    assert not before
    assert len(after_kw) == 2
    assert after_sem[0].snippet == texts[1]


@settings(deadline=None)
@given(
    st.lists(st.sampled_from(["метафора", "метафоры", "карта", "смысла", "и", "мост", "maps", "\n\n", "—", "."]),
             max_size=80),
    st.integers(min_value=20, max_value=200),
)
def test_snippets_stay_short_and_highlight_only_matches(words: list[str], width: int) -> None:
    text = " ".join(words)
    snippet, spans = make_snippet(text, frozenset({"метафора", "map"}), width=width)
    assert len(snippet) <= width + 2  # plus the two ellipses
    assert "\n" not in snippet and "  " not in snippet
    for start, end in spans:
        assert textproc.lemma(snippet[start:end]) in {"метафора", "map"}
    if len(text) <= width:
        assert len(spans) == sum(1 for w, _, _ in textproc.tokenize(text) if textproc.lemma(w) in {"метафора", "map"})
