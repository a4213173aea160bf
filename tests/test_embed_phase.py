"""Embedding as a later, resumable phase of indexing (issue #16).

A first index makes every note keyword-searchable before any passage is embedded; the queued
passages are then embedded window by window. Stopping at any point keeps every committed vector,
and the next run embeds exactly the rest. Search on a partly embedded index says what is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from index_helpers import check_consistent, run_index, snapshot

from indexer.embed import FakeEmbedder
from indexer.pipeline import Pipeline, index_vault, pending_embeddings, scan
from indexer.store import open_index
from interfaces.cli import cli
from queries.search import embedding_coverage, search

WORDS = ["мост", "карта", "смысл", "язык", "токен", "маяк", "туман", "гавань", "кран", "берег", "волна", "ветер", "парус", "якорь"]


def _vault(root: Path, notes: int = 30) -> Path:
    vault = root / "vault"
    for i in range(notes):
        words = [WORDS[(i * 3 + j) % len(WORDS)] for j in range(6)]
        body = "\n\n".join(
            f"Абзац {j} заметки {i}: {' '.join(words[j:] + words[:j])} и число {i * 10 + j}." for j in range(4)
        )
        (vault / f"folder{i % 3}").mkdir(parents=True, exist_ok=True)
        (vault / f"folder{i % 3}" / f"n{i:02}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")
    (vault / "needle.md").write_text("# Needle\n\nРедкое слово квазиэллипсоид живёт здесь.\n", encoding="utf-8")
    return vault


class _Stop(Exception):
    pass


def _distinct(index_dir: Path) -> int:
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        return idx.db.execute("SELECT count(DISTINCT hash) FROM passages").fetchone()[0]


def test_notes_phase_alone_makes_everything_keyword_searchable(tmp_path: Path) -> None:
    vault, ix = _vault(tmp_path), tmp_path / "ix"
    emb = FakeEmbedder()
    report = run_index(vault, ix, emb, embed="none")
    assert emb.embedded == [] and report.passages_embedded == 0
    distinct = _distinct(ix)
    assert report.passages_pending == distinct > 0
    counts = check_consistent(ix, complete=False)
    assert counts["vectors"] == 0 and counts["pending"] == distinct
    with open_index(ix, readonly=True, notify=lambda m: None) as idx:
        assert [h.note for h in search(idx, "квазиэллипсоид", mode="keyword", embedder=emb)] == ["needle.md"]
        hybrid = search(idx, "квазиэллипсоид", mode="hybrid", embedder=emb)  # works on what is embedded
        assert hybrid[0].note == "needle.md"
        assert search(idx, "квазиэллипсоид", mode="semantic", embedder=emb) == []
        coverage = embedding_coverage(idx)
        assert (coverage.missing, coverage.total, coverage.complete) == (distinct, distinct, False)
        assert idx.counts()["pending_embeddings"] == distinct

    # the next run has no note to re-read and embeds the whole queue
    report = run_index(vault, ix, emb)
    assert report.notes_changed == 0 and report.passages_embedded == distinct
    assert sorted(emb.embedded) == sorted(set(emb.embedded))  # nothing embedded twice
    check_consistent(ix)
    shutil_vault = tmp_path / "fresh"
    run_index(vault, shutil_vault, FakeEmbedder())  # one uninterrupted run gives the same index
    assert snapshot(ix) == snapshot(shutil_vault)


def test_stopping_while_embedding_keeps_committed_windows(tmp_path: Path) -> None:
    vault, ix = _vault(tmp_path), tmp_path / "ix"
    emb = FakeEmbedder()
    emb.batch_size = 4
    seen: list[tuple[int, int]] = []

    def stop_midway(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= total // 2:
            raise _Stop

    with open_index(ix, create=True, notify=lambda m: None) as idx, pytest.raises(_Stop):
        index_vault(vault, idx, emb, embed_window=8, embed_progress=stop_midway)
    total = seen[0][1]
    assert seen[0] == (0, total)
    first = list(emb.embedded)
    counts = check_consistent(ix, complete=False)
    committed = counts["vectors"]
    assert 0 < committed < total and committed % 8 == 0  # whole windows only
    assert counts["pending"] == total - committed
    assert len(first) > committed  # the window in progress was embedded, then lost

    emb2 = FakeEmbedder()
    report = run_index(vault, ix, emb2)
    assert report.passages_embedded == len(emb2.embedded) == total - committed
    with open_index(ix, readonly=True, notify=lambda m: None) as idx:
        stored = {r[0] for r in idx.db.execute("SELECT p.text FROM passages p")}
    assert set(emb2.embedded) | set(first[:committed]) == stored
    assert not set(emb2.embedded) & set(first[:committed])  # no committed vector re-embedded
    check_consistent(ix)


def test_embed_new_leaves_an_older_backlog_queued(tmp_path: Path) -> None:
    vault, ix = _vault(tmp_path), tmp_path / "ix"
    emb = FakeEmbedder()
    run_index(vault, ix, emb, embed="none")
    backlog = _distinct(ix)
    (vault / "fresh.md").write_text("# Fresh\n\nСовсем новая мысль о маяке.\n", encoding="utf-8")
    with open_index(ix, notify=lambda m: None) as idx:
        pipeline = Pipeline(idx, vault, emb, embed_window=8)
        report = pipeline.apply(scan(vault, idx), embed="new", gc=False)
        assert sorted(emb.embedded) == ["# Fresh\n\nСовсем новая мысль о маяке.", "fresh"]  # its text and its title
        assert report.passages_pending == backlog == pending_embeddings(idx.db)
        # the backlog, a slice at a time (as the watcher does between bursts)
        assert pipeline.embed_pending(max_seconds=0.0) == 8
        assert pending_embeddings(idx.db) == backlog - 8
    check_consistent(ix, complete=False)


def test_search_cli_says_how_much_is_not_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault, ix = _vault(tmp_path), tmp_path / "ix"
    run_index(vault, ix, FakeEmbedder(), embed="none")
    monkeypatch.setenv("TROPEGRAPH_ENGINE", "fake")
    runner = CliRunner()
    args = ["--vault", str(vault), "--index-dir", str(ix)]
    distinct = _distinct(ix)
    res = runner.invoke(cli, ["search", "квазиэллипсоид", *args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["embedding"] == {"missing": distinct, "passages": distinct, "complete": False}
    assert data["results"][0]["note"] == "needle.md"
    res = runner.invoke(cli, ["search", "квазиэллипсоид", *args])
    assert res.exit_code == 0
    assert f"{distinct:,} of {distinct:,} passages (100%) are not embedded yet" in res.stderr
    res = runner.invoke(cli, ["search", "квазиэллипсоид", *args, "--mode", "keyword"])
    assert "not embedded" not in res.stderr  # keyword results are complete: nothing to say
    status = json.loads(runner.invoke(cli, ["status", *args, "--json"]).stdout)
    assert status["counts"]["pending_embeddings"] == distinct
