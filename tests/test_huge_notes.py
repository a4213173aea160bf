"""Huge notes are committed a slice of passages at a time, resumable after a kill (issue #17).

A turn longer than ``HUGE_TURN_CHARS`` is chunked section by section; every ``batch_passages``
passages the slice is committed with the note marked part-written, so a kill loses one slice and
the next run lemmatises (and embeds) only what was not committed. The result equals one
uninterrupted run.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from index_helpers import check_consistent, run_index, snapshot

import indexer.pipeline
from indexer import hooks
from indexer.embed import FakeEmbedder
from indexer.pipeline import HUGE_TURN_CHARS, SECTION_CHARS, sections
from indexer.store import open_index

SYLLABLES = ["ка", "ро", "ми", "на", "то", "ле", "ва", "си", "по", "ру", "ды", "же", "зо", "ба", "гу", "фе"]


def huge_text(chars: int, seed: int = 1) -> str:
    """Unique-looking Russian-like text in paragraphs (every passage differs)."""
    rng = random.Random(seed)
    paras, size = [], 0
    while size < chars:
        words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(40, 90))]
        para = " ".join(words) + "."
        paras.append(para)
        size += len(para) + 2
    return "\n\n".join(paras)


class Killed(BaseException):
    """Stands in for SIGKILL: hooks catch ``Exception`` only, so this ends the run."""


@pytest.fixture(autouse=True)
def no_metaphor_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The metaphor engine on ~100 KB of unique made-up words groups thousands of candidate
    phrases (minutes): not what these tests are about. Registered first, then left out."""
    hooks.load_default_hooks()
    monkeypatch.setattr(hooks, "AFTER_BATCH", [])
    monkeypatch.setattr(hooks, "AFTER_APPLY", [])
    monkeypatch.setattr(hooks, "load_default_hooks", lambda: None)


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # the real thresholds scaled down 8x, so the test lemmatises ~100 KB, not megabytes
    monkeypatch.setattr(indexer.pipeline, "HUGE_TURN_CHARS", HUGE_TURN_CHARS // 8)
    monkeypatch.setattr(indexer.pipeline, "SECTION_CHARS", SECTION_CHARS // 8)
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "small.md").write_text("# Small\n\nA small note about lighthouses.\n", encoding="utf-8")
    (vault / "huge.md").write_text("# Huge\n\n" + huge_text(3 * HUGE_TURN_CHARS // 8) + "\n", encoding="utf-8")
    return vault


def _passages(index_dir: Path, path: str) -> int:
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        return idx.db.execute(
            "SELECT count(*) FROM passages p JOIN turns t ON t.id = p.turn_id JOIN notes n ON n.id = t.note_id "
            "WHERE n.path = ?",
            (path,),
        ).fetchone()[0]


def _passages_expected(vault: Path) -> int:
    """Passages of huge.md: chunked section by section, as the pipeline does."""
    from indexer.pipeline import make_chunker, note_sections
    from vault_schema.parse import load_note

    chunker = make_chunker(FakeEmbedder())
    (turn,) = note_sections(load_note(vault, "huge.md"))
    return sum(len(chunker.split(turn.text[a:b])) for a, b in sections(turn.text))


def test_sections_cover_the_text_at_paragraph_breaks() -> None:
    text = huge_text(300_000)
    spans = sections(text, 65_536)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(spans))  # contiguous
    assert all(text[b - 2 : b] == "\n\n" for _, b in spans[:-1])  # cut after a blank line
    one_line = "x" * 200_000
    assert sections(one_line, 65_536) == [(0, 65_536), (65_536, 131_072), (131_072, 196_608), (196_608, 200_000)]


def test_a_huge_note_commits_slices_and_equals_one_transaction(vault: Path, tmp_path: Path) -> None:
    report = run_index(vault, tmp_path / "sliced", FakeEmbedder(), batch_passages=40)
    whole = run_index(vault, tmp_path / "whole", FakeEmbedder(), batch_passages=10**9)
    total = _passages(tmp_path / "sliced", "huge.md")
    assert total > 120
    assert report.batches >= total // 60 and whole.batches == 1
    assert report.notes_failed == 0
    check_consistent(tmp_path / "sliced")
    assert snapshot(tmp_path / "sliced") == snapshot(tmp_path / "whole")


def test_a_kill_mid_note_keeps_committed_slices_and_resumes(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ix = tmp_path / "ix"
    commits = [0]
    real_commit = indexer.pipeline.Pipeline._commit

    def commit_then_die(self, batch, report) -> None:  # SIGKILL right after the 3rd commit
        real_commit(self, batch, report)
        commits[0] += 1
        if commits[0] == 3:
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(indexer.pipeline.Pipeline, "_commit", commit_then_die)
        with pytest.raises(Killed):
            run_index(vault, ix, FakeEmbedder(), batch_passages=40)
    committed = _passages(ix, "huge.md")
    assert 40 <= committed < _passages_expected(vault) - 40
    check_consistent(ix, complete=False)
    with open_index(ix, readonly=True, notify=lambda m: None) as idx:
        size, sha = idx.db.execute("SELECT size, sha256 FROM notes WHERE path = 'huge.md'").fetchone()
        assert (size, sha) == (-1, "")  # marked part-written: the next scan re-reads it
        assert idx.db.execute("SELECT count(*) FROM partial_turns").fetchone()[0] == 1

    lemmatised: list[str] = []
    real = indexer.pipeline.fts_lemmas
    monkeypatch.setattr(indexer.pipeline, "fts_lemmas", lambda text: lemmatised.append(text) or real(text))
    emb = FakeEmbedder()
    run_index(vault, ix, emb, batch_passages=40)
    total = _passages(ix, "huge.md")
    huge = [t for t in lemmatised if "lighthouses" not in t and t != "small"]  # small.md (text, title) came after the kill
    assert len(huge) == total - committed  # only what was not committed
    clean = tmp_path / "clean"
    run_index(vault, clean, FakeEmbedder(), batch_passages=40)
    check_consistent(ix)
    assert snapshot(ix) == snapshot(clean)
    with open_index(ix, readonly=True, notify=lambda m: None) as idx:
        assert idx.db.execute("SELECT count(*) FROM partial_turns").fetchone()[0] == 0
