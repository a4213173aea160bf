"""indexer.textproc: the lemmas keyword search is built on (index side and query side must agree)."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer import textproc
from queries.search import KeywordQuery


@pytest.mark.parametrize(
    ("forms", "lemma"),
    [
        (["метафора", "метафору", "метафоры", "метафорой", "метафорах", "Метафоре"], "метафора"),
        (["карта", "карту", "картой", "карте", "картами"], "карта"),
        (["смысл", "смысла", "смыслом", "смыслы"], "смысл"),
        (["мост", "моста", "мосты", "мостами"], "мост"),
        (["ёжик", "ежик", "Ёжика"], "ежик"),
        (["map", "maps", "Maps"], "map"),
        (["bridge", "bridges"], "bridge"),
        (["went", "goes"], "go"),
    ],
)
def test_inflections_share_a_lemma(forms: list[str], lemma: str) -> None:
    assert {textproc.lemma(f) for f in forms} == {lemma}


def test_lemma_variants_keep_plausible_readings_only() -> None:
    assert textproc.lemma_variants("битом")[0] == textproc.lemma("битом")
    assert {"битый", "бит", "бить"} <= set(textproc.lemma_variants("битом"))
    assert textproc.lemma_variants("стали") == ("стать",)  # сталь scores ~1 %: dropped
    assert textproc.lemma_variants("maps") == ("map",)


def test_stop_words_are_lemmas() -> None:
    for word in ("и", "в", "что", "это", "который", "the", "and", "was"):
        assert textproc.is_stop(textproc.lemma(word)), word
    for word in ("метафора", "карта", "bridge"):
        assert not textproc.is_stop(textproc.lemma(word))


CYRILLIC_TEXT = st.text(alphabet=st.sampled_from(list("абвгдеёжзийклмнопрстуфхцчшщъыьэюя АБВЁ-.,!?\n")), max_size=60)
MIXED_TEXT = st.text(
    alphabet=st.sampled_from(list("абвгдеёжзиклмнопрстуя mapsbridgewnt-'’0123456789.,\"«»")), max_size=60
)


@given(st.one_of(CYRILLIC_TEXT, MIXED_TEXT))
def test_tokens_point_into_the_text_and_lemmas_are_normalised(text: str) -> None:
    tokens = textproc.tokenize(text)
    for word, start, end in tokens:
        assert text[start:end] == word
    lem = textproc.fts_lemmas(text).split()
    assert len(lem) >= len(tokens)  # one lemma per token (a hyphenated lemma never has spaces)
    assert all(lemma == lemma.lower() and "ё" not in lemma for lemma in lem)


@settings(max_examples=80, deadline=None)
@given(CYRILLIC_TEXT, st.data())
def test_every_word_of_a_passage_finds_it(text: str, data: st.DataObject) -> None:
    """Whatever form a word has in a passage, querying that same form matches the stored lemmas."""
    words = [w for w, _, _ in textproc.tokenize(text)]
    if not words:
        return
    word = data.draw(st.sampled_from(words))
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(lemmas, tokenize = 'unicode61 remove_diacritics 2')")
    db.execute("INSERT INTO f (rowid, lemmas) VALUES (1, ?)", (textproc.fts_lemmas(text),))
    kq = KeywordQuery.parse(f'"{word}"') if textproc.is_stop(textproc.lemma(word)) else KeywordQuery.parse(word)
    if not kq:
        return
    assert db.execute("SELECT rowid FROM f WHERE f MATCH ?", (kq.match(strict=True),)).fetchall() == [(1,)]
