"""Invariant: after any sequence of added/removed turns, the incremental tables equal a full
recompute (FakeEmbedder: the invariant does not depend on the model, and it keeps this fast)."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_metaphor_support import FakeScorer, index_from_texts

from indexer.embed import FakeEmbedder
from indexer.metaphors import engine

SENTENCES = [
    "Карта смысла здесь буквально лист бумаги.",
    "Эти тексты — карта смысла, которую ты оставляешь себе.",
    "Я хочу составить карту смысла для своих записей.",
    "Ты строишь мост между двумя мирами.",
    "Нейронная сеть обучалась всю ночь.",
    "Я открыл веса нейронной сети в отладчике.",
    "В структуре тишины есть ритм.",
    "These notes are a map of meaning I leave for myself.",
    "Каждая нейронная сеть ошибается по-своему.",
    "Мы дошли до старого маяка на мысе.",
]


def _snapshot(idx):
    db = idx.db
    return (
        sorted(db.execute("SELECT turn_id, key, surface, start, end, figurative FROM metaphor_occurrences")),
        sorted(db.execute("SELECT * FROM metaphor_counts")),
        sorted(db.execute("SELECT * FROM metaphor_keys")),
        sorted(db.execute("SELECT * FROM metaphors")),
        sorted(db.execute("SELECT * FROM metaphor_members")),
        sorted(db.execute("SELECT * FROM metaphor_edges")),
    )


turn_texts = st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=3).map(" ".join)
conversation = st.lists(turn_texts, min_size=1, max_size=3)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(conversation, min_size=1, max_size=4),
    later=st.lists(turn_texts, min_size=0, max_size=4),
    drop=st.sets(st.integers(min_value=1, max_value=12), max_size=4),
)
def test_incremental_equals_full(first, later, drop):
    fake = FakeEmbedder()
    scorer = FakeScorer(images=("карта смысл", "мост между мир", "map of meaning"))
    with tempfile.TemporaryDirectory() as tmp:
        convs = [[("user", f"2025-0{1 + ci % 9}-01T10:0{k}:00", t) for k, t in enumerate(c)]
                 for ci, c in enumerate(first)]
        idx = index_from_texts(Path(tmp) / "index", convs)
        try:
            engine.update(idx, embedder=fake, scorer=scorer)
            db = idx.db
            db.execute("BEGIN IMMEDIATE")
            removed = [r[0] for r in db.execute("SELECT id FROM turns") if r[0] in drop]
            db.executemany("DELETE FROM turns WHERE id = ?", [(i,) for i in removed])
            added = []
            for k, text in enumerate(later):
                cur = db.execute(
                    "INSERT INTO turns (conversation_id, uid, note_id, position, role, time, text, text_hash) "
                    "VALUES ('conv-0', ?, (SELECT note_id FROM conversations WHERE id = 'conv-0'), ?, "
                    "'assistant', ?, ?, ?)",
                    (f"late-{k}", 100 + k, f"2025-12-0{1 + k}T10:00:00", text,
                     hashlib.sha256(text.encode()).hexdigest()))
                added.append(cur.lastrowid)
            db.execute("COMMIT")
            engine.update(idx, added, removed, embedder=fake, scorer=scorer)
            incremental = _snapshot(idx)
            engine.recompute_all(idx, embedder=fake, scorer=scorer)
            assert _snapshot(idx) == incremental
        finally:
            idx.close()
