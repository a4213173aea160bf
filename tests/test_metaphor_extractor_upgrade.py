"""New extraction rules reach an existing index: when ``extract.py`` or a lemmatiser changes
(an upgrade fixing «веда записи» or "file named"), the next run re-extracts every turn once,
reusing the cached per-sentence scores; until then nothing is re-extracted."""
from __future__ import annotations

from pathlib import Path

from test_metaphor_support import FakeScorer, index_from_texts

from indexer.embed import FakeEmbedder
from indexer.metaphors import engine

TEXTS = [[("user", "2025-01-01T10:00:00", "Карта смысла растёт. Нейронная сеть учится.")],
         [("assistant", "2025-02-01T10:00:00", "Карта смысла снова здесь. Нейронная сеть спит.")]]


def test_new_extraction_rules_re_extract_an_existing_index_once(tmp_path, monkeypatch):
    scorer = FakeScorer(images=("карта смысл",))
    monkeypatch.setattr(engine, "default_scorer", lambda *a, **k: scorer)
    idx = index_from_texts(tmp_path / "index", TEXTS)
    try:
        def keys() -> set[str]:
            return {r[0] for r in idx.db.execute("SELECT key FROM metaphor_keys")}

        def run() -> engine.UpdateReport:
            return engine.update(idx, vault=tmp_path, embedder=FakeEmbedder(), scorer=scorer)

        assert run().turns == 2
        assert keys() == {"карта смысл", "нейронный сеть"} and not engine.behind(idx)
        asked = len(scorer.items)
        real = engine.extract
        monkeypatch.setattr(engine, "extract", lambda text: [c for c in real(text) if c.key != "нейронный сеть"])
        assert run().turns == 0 and "нейронный сеть" in keys()  # same rules id: nothing re-extracted
        monkeypatch.setattr(engine, "_EXTRACTOR_ID", "new-rules")
        assert engine.behind(idx)  # index / watch catch up even when no note changed
        assert run().turns == 2
        assert keys() == {"карта смысл"} and not engine.behind(idx)
        assert len(scorer.items) == asked  # every sentence's score came from the cache
    finally:
        idx.close()


def test_the_extractor_id_follows_the_rules_file(tmp_path, monkeypatch):
    from indexer.metaphors import extract

    rules = tmp_path / "extract.py"
    rules.write_bytes(Path(extract.__file__).read_bytes())
    monkeypatch.setattr(extract, "__file__", str(rules))
    ids = []
    for edit in ("", "\n# a new rule\n"):
        rules.write_bytes(rules.read_bytes() + edit.encode())
        monkeypatch.setattr(engine, "_EXTRACTOR_ID", None)
        ids.append(engine.extractor_id())
        assert engine.extractor_id() == ids[-1]  # computed once per process
    assert len(ids[0]) == 12 and ids[0] != ids[1]
