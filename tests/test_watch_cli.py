"""``tropegraph watch`` as a process: one writer per index, signals, a restart after SIGTERM mid-batch."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import waiting
from click.testing import CliRunner
from index_helpers import read_rows

from indexer.lock import holder
from interfaces.cli import cli


def wait_for(cond: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    return waiting.wait_for(cond, timeout, what, poll=0.05)


class WatchProcess:
    """``python -m interfaces watch --json-log`` with its log in a file (no pipe to fill up)."""

    def __init__(self, vault: Path, index_dir: Path, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.cmd = [
            sys.executable, "-m", "interfaces", "watch", "--vault", str(vault), "--index-dir", str(index_dir),
            "--debounce", "0.2", "--json-log",
        ]
        self._fh = open(log, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self._fh, env=env)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "text", "message": line})
        return out

    def wait_event(self, name: str, timeout: float = 90.0, after: int = 0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"watcher exited with {self.proc.returncode}: {self.log.read_text()}")
            return next((e for e in self.events()[after:] if e.get("event") == name), None)

        return wait_for(found, timeout, f"log event {name!r}")

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._fh.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("TROPEGRAPH_RAISE_ERRORS", None)
    e["TROPEGRAPH_ENGINE"] = "fake"
    e["HOME"] = str(tmp_path / "home")
    return e


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "vault"
    (v / ".obsidian").mkdir(parents=True)
    (v / "a.md").write_text("# A\n\nПервая заметка.\n", encoding="utf-8")
    return v


@pytest.fixture
def procs() -> Iterator[list[WatchProcess]]:
    started: list[WatchProcess] = []
    yield started
    for p in started:
        p.kill()


def _paths(index_dir: Path) -> set[str]:
    return {r[0] for r in read_rows(index_dir, "SELECT path FROM notes")}


@pytest.mark.slow
def test_second_writer_is_refused_and_sigint_exits_0(
    vault: Path, tmp_path: Path, env: dict[str, str], procs: list[WatchProcess]
) -> None:
    index_dir = tmp_path / "index"
    first = WatchProcess(vault, index_dir, tmp_path / "first.log", env)
    procs.append(first)
    first.wait_event("catch-up")
    info = holder(index_dir)
    assert info is not None and info.pid == first.proc.pid

    started = time.monotonic()
    second = subprocess.run(first.cmd, check=False, capture_output=True, text=True, env=env, timeout=60)
    assert time.monotonic() - started < 30
    assert second.returncode == 1
    assert second.stdout == ""
    assert second.stderr == (
        f"Error: the index at {index_dir} is being written by pid {first.proc.pid} "
        f"(tropegraph watch --vault {vault}), since {info.started}; wait for it to finish or stop it "
        "(a running `tropegraph watch` keeps the index up to date)\n"
    )

    # `tropegraph index` is a writer too
    indexing = subprocess.run(
        [sys.executable, "-m", "interfaces", "index", "--vault", str(vault), "--index-dir", str(index_dir)],
        check=False, capture_output=True, text=True, env=env, timeout=60,
    )
    assert (indexing.returncode, indexing.stderr) == (1, second.stderr)

    (vault / "b.md").write_text("# B\n\nВторая.\n", encoding="utf-8")
    wait_for(lambda: "b.md" in _paths(index_dir), what="b.md indexed by the first watcher")

    first.proc.send_signal(signal.SIGINT)
    assert first.wait() == 0
    assert first.events()[-1]["event"] == "stop"
    assert holder(index_dir) is None


@pytest.mark.slow
def test_sigterm_mid_batch_then_restart_resumes(
    vault: Path, tmp_path: Path, env: dict[str, str], procs: list[WatchProcess]
) -> None:
    env["TROPEGRAPH_BATCH_NOTES"] = "25"  # many small commits: SIGTERM lands between and inside them
    index_dir = tmp_path / "index"
    first = WatchProcess(vault, index_dir, tmp_path / "first.log", env)
    procs.append(first)
    first.wait_event("catch-up")

    n = 1500
    (vault / "Import").mkdir()
    for i in range(n):
        (vault / "Import" / f"n{i:04}.md").write_text(
            f"# Note {i}\n\n" + "\n\n".join(
                f"## Part {j}\n\nЗаметка {i}, часть {j}: метафора номер {i * 10 + j} о мостах и картах." for j in range(3)
            ) + "\n",
            encoding="utf-8",
        )
    first.wait_event("applying")
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait() == 0
    assert first.events()[-1] == {
        **first.events()[-1],
        "event": "stop",
        "message": "stopped; the batch in progress was rolled back and will be redone at the next start",
    }
    assert holder(index_dir) is None

    db = sqlite3.connect(f"{(index_dir / 'index.db').as_uri()}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = (  # passages neither embedded nor queued for embedding
            "SELECT count(*) FROM passages p WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE v.hash = p.hash) "
            "AND NOT EXISTS (SELECT 1 FROM embed_queue q WHERE q.hash = p.hash)"
        )
        assert db.execute(orphans).fetchone()[0] == 0
        before = dict(db.execute("SELECT hash, id FROM vectors"))
        indexed_before = {r[0] for r in db.execute("SELECT path FROM notes")}
    finally:
        db.close()
    assert len(indexed_before) < n + 1  # it really was interrupted

    second = WatchProcess(vault, index_dir, tmp_path / "second.log", env)
    procs.append(second)
    second.wait_event("catch-up", timeout=180)
    embedded = second.wait_event("embedded", timeout=180)  # the backlog, embedded after the catch-up
    assert _paths(index_dir) == {"a.md", *(f"Import/n{i:04}.md" for i in range(n))}
    db = sqlite3.connect(f"{(index_dir / 'index.db').as_uri()}?mode=ro", uri=True)
    try:
        after = dict(db.execute("SELECT hash, id FROM vectors"))
        distinct = db.execute("SELECT count(DISTINCT hash) FROM passages").fetchone()[0]
    finally:
        db.close()
    assert {h: after.get(h) for h in before} == before  # committed vectors kept, never re-embedded
    assert embedded["passages"] == distinct - len(before)
    second.proc.send_signal(signal.SIGTERM)
    assert second.wait() == 0


def test_watch_help_and_bad_vault() -> None:
    result = CliRunner().invoke(cli, ["watch", "--help"])
    assert result.exit_code == 0
    for flag in ("--vault", "--index-dir", "--debounce", "--reconcile-interval", "--json-log"):
        assert flag in result.output
    result = CliRunner().invoke(cli, ["watch", "--vault", "/nonexistent/vault"])
    assert result.exit_code == 1
    assert result.stderr == "Error: vault folder /nonexistent/vault does not exist; check --vault / TROPEGRAPH_VAULT\n"


def test_defaults_agree_with_the_library() -> None:
    from indexer.watch import DEFAULT_DEBOUNCE, DEFAULT_RECONCILE_INTERVAL
    from interfaces.commands import watch as cmd

    assert (cmd.DEFAULT_DEBOUNCE, cmd.DEFAULT_RECONCILE_INTERVAL) == (DEFAULT_DEBOUNCE, DEFAULT_RECONCILE_INTERVAL)
