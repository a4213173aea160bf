"""The watcher and the FAISS cache file: batches do not rewrite it, saves come on a schedule and at a
clean stop, and the older file a kill leaves is reconciled with SQLite on the next load (no rebuild).

Real watchdog observer, real SQLite and FAISS, ``FakeEmbedder`` (it records every passage it
embeds, so "nothing re-embedded" is checked directly).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from index_helpers import read_rows
from test_watch import Running, note, write
from test_watch_cli import WatchProcess
from waiting import no_thread_leaks, wait_for

from indexer.embed import FakeEmbedder
from indexer.store import open_index
from indexer.vectors import FAISS_NAME, SIDECAR_NAME, index_ids


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    yield from no_thread_leaks()


def sidecar(index_dir: Path) -> dict:
    return json.loads((index_dir / SIDECAR_NAME).read_text())


def sqlite_ids(index_dir: Path) -> list[int]:
    return [r[0] for r in read_rows(index_dir, "SELECT id FROM vectors ORDER BY id")]


def paths(index_dir: Path) -> set[str]:
    return {r[0] for r in read_rows(index_dir, "SELECT path FROM notes")}


def file_state(index_dir: Path) -> tuple[int, int, bytes]:
    st = (index_dir / FAISS_NAME).stat()
    return st.st_ino, st.st_mtime_ns, (index_dir / SIDECAR_NAME).read_bytes()


def top_note(index_dir: Path, text: str, messages: list[str]) -> str:
    """Load the cache read-only (collecting its messages) and return the best semantic hit's note."""
    from queries.search import search

    with open_index(index_dir, readonly=True, notify=messages.append) as idx:
        assert sorted(index_ids(idx.vector_index()).tolist()) == sqlite_ids(index_dir)
        hits = search(idx, text, mode="semantic", embedder=FakeEmbedder())
    return hits[0].note


def test_batches_leave_the_file_alone_until_a_clean_stop(vault: Path, index_dir: Path) -> None:
    write(vault, "a.md", note("A", "Первая заметка о мостах."))
    with Running(vault, index_dir, save_interval=3600) as w:
        after_catch_up = file_state(index_dir)
        assert sidecar(index_dir)["count"] == len(sqlite_ids(index_dir))  # catch-up saves
        for i in range(3):
            write(vault, f"b{i}.md", note(f"B{i}", f"Заметка {i} о маяках и туманах номер {i}."))
            wait_for(lambda i=i: f"b{i}.md" in w.paths(), what=f"b{i}.md indexed")
        wait_for(lambda: sum(b.created for b in w.batches if b.kind == "batch") == 3, what="batches done")
        assert file_state(index_dir) == after_catch_up  # no batch rewrote the file
        messages: list[str] = []  # a reader tops up from SQLite: the new notes are searchable
        assert top_note(index_dir, "Заметка 2 о маяках и туманах номер 2.", messages) == "b2.md"
        assert len(messages) == 1 and "behind the database; added" in messages[0]
    side = sidecar(index_dir)  # the clean stop saved
    assert side["count"] == len(sqlite_ids(index_dir)) and side["max_id"] == max(sqlite_ids(index_dir))


def test_a_save_comes_once_the_interval_has_passed(vault: Path, index_dir: Path) -> None:
    write(vault, "a.md", note("A", "Первая заметка о мостах."))
    with Running(vault, index_dir, save_interval=0.3) as w:
        write(vault, "b.md", note("B", "Вторая заметка о маяках."))
        wait_for(lambda: "b.md" in w.paths() and w.pending() == 0, what="b.md indexed and embedded")
        wait_for(  # the sidecar is replaced just before the FAISS file: wait for both (no temp left)
            lambda: sidecar(index_dir)["count"] == len(sqlite_ids(index_dir)) and not list(index_dir.glob("*.tmp*")),
            what="a deferred save",
        )
        messages: list[str] = []
        assert top_note(index_dir, "Вторая заметка о маяках.", messages) == "b.md"
        assert messages == []  # the file on disk was already current


def test_an_older_file_is_reconciled_not_rebuilt(vault: Path, index_dir: Path) -> None:
    """As if the watcher were killed after its batches and a reconciliation's garbage collection,
    before it saved: the next reader removes and adds in place."""
    for i in range(6):
        write(vault, f"n{i}.md", note(f"N{i}", f"Заметка {i} о гаванях и кранах, номер {i}."))
    embedder = FakeEmbedder()
    with Running(vault, index_dir, embedder=embedder, save_interval=3600, reconcile_interval=0.5) as w:
        old = (index_dir / FAISS_NAME).read_bytes(), (index_dir / SIDECAR_NAME).read_bytes()
        old_ids = set(sqlite_ids(index_dir))
        for i in range(2):
            (vault / f"n{i}.md").unlink()
        write(vault, "new.md", note("New", "Новая заметка о маяках в тумане."))
        wait_for(lambda: "new.md" in w.paths() and "n0.md" not in w.paths(), what="batch")
        wait_for(lambda: not old_ids <= set(sqlite_ids(index_dir)), what="reconciliation removes vectors")
    embedded = len(embedder.embedded)
    (index_dir / FAISS_NAME).write_bytes(old[0])  # the kill: the file from before all that
    (index_dir / SIDECAR_NAME).write_bytes(old[1])
    now = set(sqlite_ids(index_dir))
    removed, added = len(old_ids - now), len(now - old_ids)
    assert removed and added
    messages: list[str] = []
    assert top_note(index_dir, "Новая заметка о маяках в тумане.", messages) == "new.md"
    assert messages == [f"vector cache was out of date; removed {removed}, added {added} vectors"]
    assert len(embedder.embedded) == embedded


@pytest.mark.slow
def test_sigkill_between_saves_leaves_a_file_the_next_load_completes(vault: Path, tmp_path: Path) -> None:
    env = dict(os.environ, TROPEGRAPH_ENGINE="fake", HOME=str(tmp_path / "home"))
    env.pop("TROPEGRAPH_RAISE_ERRORS", None)
    index_dir = tmp_path / "index"
    write(vault, "a.md", note("A", "Первая заметка о мостах."))
    proc = WatchProcess(vault, index_dir, tmp_path / "watch.log", env)
    try:
        proc.wait_event("embedded")  # the catch-up's passages, embedded after it, then saved
        saved = file_state(index_dir)
        for i in range(3):
            write(vault, f"b{i}.md", note(f"B{i}", f"Заметка {i} о маяках и туманах номер {i}."))

        def created() -> int:  # a batch is logged once it is applied (and used to be saved)
            return sum(e.get("created", 0) for e in proc.events() if e.get("event") == "batch")

        wait_for(lambda: created() >= 3, 60, "the batches applied")
        assert {"b0.md", "b1.md", "b2.md"} <= paths(index_dir)
        proc.proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        proc.kill()
    assert file_state(index_dir) == saved  # batches did not save; the kill lost nothing that matters
    messages: list[str] = []
    assert top_note(index_dir, "Заметка 2 о маяках и туманах номер 2.", messages) == "b2.md"
    assert len(messages) == 1 and "behind the database; added" in messages[0]
