"""Per-use figurativeness in the engine: stored per use, cached, aggregated per key/metaphor, the
cut-off, the user's overrides, and one definition of a use (FakeEmbedder + a fake model: fast)."""
from __future__ import annotations

import pytest
from test_metaphor_support import FakeScorer, index_from_texts

from indexer.embed import FakeEmbedder
from indexer.metaphors import engine
from queries.metaphors import explain_metaphor, get_metaphor, list_metaphors, list_status

MAP = "карта смысл"
NET = "нейронный сеть"

CONVERSATIONS = [
    [("user", "2025-01-05T10:00:00", "Эта карта смысла помогает мне думать."),
     ("assistant", "2025-01-05T10:08:00", "Нейронная сеть обучалась всю ночь.")],
    [("user", "2025-02-01T09:00:00", "Я снова вижу карту смысла в своих записях."),
     ("assistant", "2025-02-01T09:01:00", "Каждая нейронная сеть ошибается по-своему.")],
    [("assistant", "2025-03-03T12:00:00", "Карта смысла, снова карта смысла: повторяю."),
     ("user", "2025-03-03T12:05:00", "Нейронная сеть снова упала.")],
    # the assistant quotes the first sentence verbatim: one more use, not one more sentence
    [("assistant", "2025-04-04T08:00:00", "Эта карта смысла помогает мне думать.")],
    # a literal use of the image's words
    [("user", "2025-05-05T08:00:00", "Карта смысла здесь буквально лист бумаги.")],
]


@pytest.fixture
def built(tmp_path):
    engine._FIG_MEMORY.clear()  # each test sees what a fresh process would ask the model
    idx = index_from_texts(tmp_path / "index", CONVERSATIONS)
    scorer = FakeScorer(images=(MAP,))
    engine.update(idx, embedder=FakeEmbedder(), scorer=scorer)
    yield idx, scorer, tmp_path
    idx.close()


def _by_key(listed):
    return {k: m for m in listed for k in m.keys}


def test_each_use_is_scored_in_its_sentence(built):
    idx, _, _ = built
    rows = idx.db.execute("SELECT sentence, figurative FROM metaphor_occurrences WHERE key = ?", (MAP,)).fetchall()
    assert {s: f for s, f in rows} == {
        "Эта карта смысла помогает мне думать": 0.9,
        "Я снова вижу карту смысла в своих записях": 0.9,
        "Карта смысла, снова карта смысла: повторяю": 0.9,
        "Карта смысла здесь буквально лист бумаги": 0.1,
    }


def test_a_sentence_is_scored_once_then_cached(built):
    idx, scorer, _ = built
    asked = [s for k, s in scorer.items if k == MAP]
    # 6 occurrences; the verbatim quote is not asked again (the two in one sentence sit at two places)
    assert len(asked) == 5
    assert asked.count("Эта карта смысла помогает мне думать") == 1
    engine._FIG_MEMORY.clear()  # a new process: the scores come from the index, not the model
    again = FakeScorer(images=(MAP,))
    engine.recompute_all(idx, embedder=FakeEmbedder(), scorer=again)
    assert again.items == []


def test_overall_figurativeness_is_the_mean_over_distinct_sentences(built):
    idx, _, _ = built
    m = _by_key(list_metaphors(idx, include_literal=True))[MAP]
    # sentences 0.9, 0.9, 0.9 and 0.1 (the quote repeats the first and does not count again)
    assert m.figurative == pytest.approx((0.9 * 3 + 0.1) / 4)
    assert m.sentences == 4
    assert m.image is True
    assert m.score == pytest.approx(round(m.figurative * m.recurrence, 4))


def test_a_use_is_a_turn(built):
    idx, _, _ = built
    m = _by_key(list_metaphors(idx))[MAP]
    turns = {o.turn_id for o in get_metaphor(idx, MAP).occurrences}
    assert len(get_metaphor(idx, MAP).occurrences) == 6  # the repeating turn holds it twice
    assert m.occurrences == len(turns) == 5
    assert m.uses_by_role == {"user": 3, "assistant": 2}


def test_the_list_shows_images_only_unless_all(built):
    idx, _, _ = built
    listed = _by_key(list_metaphors(idx))
    assert MAP in listed and NET not in listed
    everything = _by_key(list_metaphors(idx, include_literal=True))
    assert NET in everything and everything[NET].image is False and everything[NET].figurative == 0.2
    status = list_status(idx)
    assert (status.images, status.literal, status.threshold) == (1, 1, 0.5)


def test_a_tracked_literal_phrase_is_listed(built):
    idx, _, vault = built
    (vault / "tropegraph.toml").write_text('[[track]]\nphrase = "нейронная сеть"\n', encoding="utf-8")
    engine.update(idx, vault=vault, embedder=FakeEmbedder(), scorer=FakeScorer(images=(MAP,)))
    m = _by_key(list_metaphors(idx))[NET]
    assert (m.status, m.image) == ("tracked", False)


@pytest.mark.parametrize("toml", ['stoplist = ["карта смысла"]\n', 'technical = ["карта", "смысл"]\n'])
def test_the_users_overrides_make_a_phrase_literal(built, toml):
    idx, _, vault = built
    (vault / "tropegraph.toml").write_text(toml, encoding="utf-8")
    engine.update(idx, vault=vault, embedder=FakeEmbedder(), scorer=FakeScorer(images=(MAP,)))
    assert MAP not in _by_key(list_metaphors(idx))
    ex = explain_metaphor(idx, "карта смысла")
    assert ex.listed is False
    assert ex.keys[0].override == ("stoplist" if "stoplist" in toml else "technical")
    assert ex.keys[0].figurative == pytest.approx(0.7)  # what the model said, kept for explain
    (vault / "tropegraph.toml").unlink()
    engine.update(idx, vault=vault, embedder=FakeEmbedder(), scorer=FakeScorer(images=(MAP,)))
    assert MAP in _by_key(list_metaphors(idx))


def test_a_new_model_rescores_every_use(built):
    idx, _, _ = built
    newer = FakeScorer(images=(NET,), model_id="test-fig-2")
    engine.update(idx, embedder=FakeEmbedder(), scorer=newer)
    listed = _by_key(list_metaphors(idx))
    assert NET in listed and MAP not in listed
    assert idx.db.execute("SELECT value FROM meta WHERE key = 'figurative_model'").fetchone()[0] == newer.model_id


def test_removed_turns_leave_the_counts(built):
    idx, scorer, _ = built
    db = idx.db
    db.execute("BEGIN IMMEDIATE")
    gone = [r[0] for r in db.execute("SELECT id FROM turns WHERE text LIKE 'Карта смысла здесь%'")]
    db.execute("DELETE FROM turns WHERE id = ?", gone)
    db.execute("COMMIT")
    engine.update(idx, [], gone, embedder=FakeEmbedder(), scorer=scorer)
    m = _by_key(list_metaphors(idx))[MAP]
    assert (m.occurrences, m.sentences, m.figurative) == (4, 3, 0.9)
    assert not db.execute("SELECT count(*) FROM metaphor_counts WHERE value LIKE '%буквально%'").fetchone()[0]


def test_status_message_says_why_the_list_is_empty(tmp_path):
    idx = index_from_texts(tmp_path / "index", CONVERSATIONS)
    engine.update(idx, embedder=FakeEmbedder(), scorer=FakeScorer())  # nothing is an image
    try:
        assert list_metaphors(idx) == []
        assert list_status(idx).message() == (
            "No recurring images in this vault.\n"
            "  2 phrases recur in 2+ conversations, but the figurativeness model judges them literal "
            "(an image needs 0.50; the closest, «нейронная сеть», scores 0.20).\n"
            "  See every candidate with `tropegraph metaphors --all`; always list a phrase you consider an image "
            'with `tropegraph metaphors track "PHRASE"`.'
        )
    finally:
        idx.close()


def test_status_agrees_with_the_list(built):
    """The status never says "no recurring images" while the list holds some (it did: the first
    line was written for an empty list only)."""
    idx, _, _ = built
    listed = list_metaphors(idx)
    status = list_status(idx)
    assert [m.keys for m in listed] == [(MAP,)] and status.images == len(listed) == 1
    message = status.message()
    assert message.splitlines()[0] == "1 recurring image in this vault (`tropegraph metaphors` lists it)."
    assert "No recurring images" not in message
    assert "1 phrase recurs in 2+ conversations, but the figurativeness model judges it literal" in message
