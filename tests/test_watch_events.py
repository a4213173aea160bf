"""The watcher's event side: events → batches → plans, half-written detection, and the real observer.

These tests need no embedder and no pipeline: they check which paths a burst touches and how
they compare with a real SQLite ``notes`` table.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from waiting import no_thread_leaks, wait_for
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)

from indexer.migrations import apply_migrations
from indexer.watch import Batch, BatchStats, Watcher, collect, is_ignored_note, looks_incomplete, plan

NEXUS_TURNS = (
    "---\nnexus: nexus-ai-chat-importer\nconversation_id: c1\n---\n# Title: t\n\n"
    ">[!nexus_user] **User** - 24.07.2025 at 14:45\n> привет\n<!-- UID: u1 -->\n\n"
    ">[!nexus_agent] **Assistant** - 24.07.2025 at 14:46\n> здравствуй\n<!-- UID: a1 -->\n\n---\n"
)


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    """Every observer, debouncer and watcher thread a test starts is joined before it ends."""
    yield from no_thread_leaks()


# --------------------------------------------------------------------------- ignore rules


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("note.md", False),
        ("Nexus/Conversations/chatgpt/2025/07/чат.md", False),
        ("Upper.MD", False),
        (".obsidian/workspace.md", True),
        (".trash/old.md", True),
        (".git/x.md", True),
        ("a/.hidden/x.md", True),
        ("image.png", True),
        ("note.md.tmp", True),
        (".#note.md", True),
        ("~$note.md", True),
        ("note.sync-conflict-20250101-123456-ABCDEF.md", True),
        ("Tropegraph/report.md", True),
    ],
)
def test_watcher_ignore_rules(path: str, ignored: bool) -> None:
    assert is_ignored_note(path) is ignored


# --------------------------------------------------------------------------- collect


def test_collect_files_moves_and_folders(tmp_path: Path) -> None:
    v = str(tmp_path)
    events = [
        FileCreatedEvent(f"{v}/a.md"),
        FileModifiedEvent(f"{v}/a.md"),
        FileClosedEvent(f"{v}/a.md"),
        FileDeletedEvent(f"{v}/gone.md"),
        FileMovedEvent(f"{v}/old.md", f"{v}/new.md"),
        FileCreatedEvent(f"{v}/.obsidian/workspace.json"),
        FileCreatedEvent(f"{v}/pic.png"),
        DirMovedEvent(f"{v}/Folder", f"{v}/Renamed"),
        DirCreatedEvent(f"{v}/.trash"),
        DirDeletedEvent(f"{v}/Dropped"),
        DirModifiedEvent(v),
        FileCreatedEvent("/elsewhere/outside.md"),
    ]
    batch = collect(events, tmp_path, is_ignored_note)
    assert batch.paths == {"a.md", "gone.md", "old.md", "new.md"}
    assert batch.prefixes == {"Folder", "Renamed", "Dropped"}
    assert batch.moves == {"new.md": "old.md"}
    assert batch.events == len(events)


def test_temp_file_then_rename_is_a_change_of_the_target(tmp_path: Path) -> None:
    v = str(tmp_path)
    events = [FileCreatedEvent(f"{v}/note.md.tmp"), FileMovedEvent(f"{v}/note.md.tmp", f"{v}/note.md")]
    batch = collect(events, tmp_path, is_ignored_note)
    assert batch.paths == {"note.md"}
    assert batch.moves == {}


def test_merge_chains_moves() -> None:
    a = Batch(paths={"a.md", "b.md"}, moves={"b.md": "a.md"}, events=1)
    a.merge(Batch(paths={"b.md", "c.md"}, moves={"c.md": "b.md"}, events=1))
    assert a.moves == {"c.md": "a.md"}
    assert a.events == 2


# --------------------------------------------------------------------------- half-written


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (NEXUS_TURNS, None),
        ("plain note without frontmatter", None),
        ("---\ntags: [a]\n---\nbody", None),
        ("---\ntags: [a]\nbod", "frontmatter is not closed"),
        (NEXUS_TURNS[: NEXUS_TURNS.rindex("<!-- UID: a1")], "last turn has no UID line"),
        (NEXUS_TURNS[: NEXUS_TURNS.rindex("a1 -->") + 1], "UID line is cut short"),
        ("\ufeff---\nx: 1\n", "frontmatter is not closed"),
        ("--- not frontmatter\ntext", None),
        ("---", "frontmatter is not closed"),
    ],
)
def test_looks_incomplete(text: str, reason: str | None) -> None:
    assert looks_incomplete(text.encode("utf-8")) == reason


def test_every_prefix_cut_inside_a_turn_is_caught() -> None:
    """Cutting a Nexus note anywhere between a turn header and its UID line is detected."""
    body_start = NEXUS_TURNS.index(">[!nexus_agent]")
    uid_end = NEXUS_TURNS.index("a1 -->") + len("a1 -->")
    for cut in range(body_start + len(">[!nexus_agent]"), uid_end):
        assert looks_incomplete(NEXUS_TURNS[:cut].encode("utf-8")), cut


# --------------------------------------------------------------------------- plan


@pytest.fixture
def notes_db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(tmp_path / "index.db", isolation_level=None)
    apply_migrations(db)
    yield db
    db.close()


def _index(db: sqlite3.Connection, vault: Path, rel: str) -> None:
    st = (vault / rel).stat()
    db.execute(
        "INSERT INTO notes (path, size, mtime_ns, sha256, kind, title, indexed_at) VALUES (?,?,?,?,?,?,?)",
        (rel, st.st_size, st.st_mtime_ns, hashlib.sha256((vault / rel).read_bytes()).hexdigest(), "note", rel,
         time.time()),
    )


def _write(vault: Path, rel: str, text: str, age: float = 3600) -> None:
    """Write a note last modified ``age`` seconds ago (long enough not to be "racy")."""
    p = vault / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    then = time.time_ns() - int(age * 1e9)
    os.utime(p, ns=(then, then))


def test_plan_compares_with_the_index(tmp_path: Path, notes_db: sqlite3.Connection) -> None:
    vault = tmp_path / "v"
    for rel in ["same.md", "changed.md", "gone.md", "old.md", "Folder/x.md", "Folder/sub/y.md"]:  # indexed long ago
        _write(vault, rel, f"text of {rel}")
        _index(notes_db, vault, rel)
    _write(vault, "changed.md", "new, longer text")
    _write(vault, "racy.md", "same size", age=0.5)  # written just before it was indexed
    _index(notes_db, vault, "racy.md")
    st = (vault / "racy.md").stat()
    (vault / "racy.md").write_text("same SIZE", encoding="utf-8")  # an edit within the same mtime tick
    os.utime(vault / "racy.md", ns=(st.st_atime_ns, st.st_mtime_ns))
    (vault / "gone.md").unlink()
    (vault / "old.md").rename(vault / "new.md")
    (vault / "Folder").rename(vault / "Renamed")
    _write(vault, "fresh.md", "hello")

    batch = Batch(
        paths={"same.md", "changed.md", "gone.md", "old.md", "new.md", "fresh.md", "racy.md"},
        prefixes={"Folder", "Renamed"},
        moves={"new.md": "old.md"},
    )
    result, held = plan(batch, vault, notes_db, is_ignored=is_ignored_note, cut_ns=time.time_ns())
    assert held == {}
    assert result.modified == ["changed.md", "racy.md"]
    # the reported rename, then the folder's notes paired by content (no event named them)
    assert result.moved == [
        ("old.md", "new.md"), ("Folder/sub/y.md", "Renamed/sub/y.md"), ("Folder/x.md", "Renamed/x.md"),
    ]
    assert result.created == ["fresh.md"]
    assert result.deleted == ["gone.md"]


def test_plan_defers_half_written_and_fresh_files(tmp_path: Path, notes_db: sqlite3.Connection) -> None:
    vault = tmp_path / "v"
    _write(vault, "half.md", NEXUS_TURNS[:-40])
    _write(vault, "whole.md", NEXUS_TURNS)
    cut = time.time_ns()
    _write(vault, "late.md", NEXUS_TURNS)
    os.utime(vault / "late.md", ns=(cut + 10**9, cut + 10**9))
    batch = Batch(paths={"half.md", "whole.md", "late.md"})
    result, held = plan(batch, vault, notes_db, is_ignored=is_ignored_note, cut_ns=cut)
    assert result.created == ["whole.md"]
    assert set(held) == {"half.md", "late.md"}
    assert result.deferred["half.md"] == "last turn has no UID line"

    forced, held = plan(batch, vault, notes_db, is_ignored=is_ignored_note, cut_ns=cut, force={"half.md"})
    assert forced.created == ["half.md", "whole.md"]
    assert set(held) == {"late.md"}


def test_batch_stats_human_line() -> None:
    line = BatchStats(created=3, turns=12, passages_embedded=30, seconds=0.8).human()
    assert line == "+3 notes, 12 turns, 30 passages embedded, 0.8 s"
    line = BatchStats(modified=1, deleted=2, moved=4, deferred=1, seconds=0.04, kind="reconcile").human()
    assert line == "reconcile: ~1 changed, -2 removed, 4 moved, 0 turns, 0 passages embedded, 1 half-written, retrying, 0.0 s"


# --------------------------------------------------------------------------- the real observer


def _collect_until(w: Watcher, cond: Callable[[Batch], bool], timeout: float = 10.0) -> Batch:
    """Merge the watcher's batches until ``cond`` holds for their union."""
    stop = threading.Event()
    seen = Batch()

    def step() -> bool:
        got = w.next_batch(stop, poll=0.05)
        if got is not None:
            seen.merge(got[0])
        return cond(seen)

    wait_for(step, timeout, "batches")
    return seen


def test_observer_reports_files_and_folders(tmp_path: Path) -> None:
    vault = tmp_path / "v"
    (vault / "Folder").mkdir(parents=True)
    _write(vault, "Folder/inside.md", "x")
    with Watcher(vault, debounce=0.05, reconcile_interval=0) as w:
        _write(vault, "a.md", "one")
        _write(vault, ".obsidian/workspace.json", "{}")
        (vault / "Folder").rename(vault / "Moved")
        batch = _collect_until(w, lambda b: "a.md" in b.paths and "Moved" in b.prefixes)
    assert "Folder" in batch.prefixes
    assert batch.moves.get("Moved/inside.md") == "Folder/inside.md"
    assert not any(p.startswith(".obsidian") for p in batch.paths)


def test_dropped_events_are_found_by_reconciliation(tmp_path: Path) -> None:
    vault = tmp_path / "v"
    vault.mkdir()
    with Watcher(vault, debounce=0.05, reconcile_interval=3600) as w:
        w.drop_events.set()
        _write(vault, "missed.md", "x")
        stop = threading.Event()
        # nothing arrives while events are dropped; a reconciliation is the only way to see it
        assert w.next_batch(stop, poll=0.3) is None
        w.request_reconcile()
        got = w.next_batch(stop, poll=0.05)
    assert got is not None and got[0].rescan


def test_deferred_files_are_retried_then_forced(tmp_path: Path) -> None:
    clock = [0.0]
    vault = tmp_path / "v"
    _write(vault, "half.md", NEXUS_TURNS[:-40])
    st = (vault / "half.md").stat()
    w = Watcher(vault, debounce=0.1, reconcile_interval=0, settle=1.0, clock=lambda: clock[0])
    stop = threading.Event()
    held = {"half.md": (st.st_size, st.st_mtime_ns, "last turn has no UID line")}
    assert w.record_deferred(held, ["half.md"]) == ["half.md"]
    assert w.record_deferred(held, ["half.md"]) == []  # logged once, not at every retry
    assert w.deferred == {"half.md": "last turn has no UID line"}
    assert w.next_batch(stop, poll=0) is None  # retry not due yet
    clock[0] = 0.2
    batch, force = w.next_batch(stop, poll=0)
    assert batch.paths == {"half.md"} and force == set()
    clock[0] = 1.5
    batch, force = w.next_batch(stop, poll=0)
    assert force == {"half.md"}
    w.record_deferred({}, ["half.md"])
    assert w.deferred == {}


def test_falls_back_to_polling_when_native_watching_fails(tmp_path: Path) -> None:
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    class Exhausted(Observer):  # type: ignore[misc,valid-type]
        def schedule(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            raise OSError(28, "inotify watch limit reached")

    vault = tmp_path / "v"
    vault.mkdir()
    with Watcher(vault, debounce=0.05, reconcile_interval=0, observer_factory=Exhausted) as w:
        assert isinstance(w._observer, PollingObserver)
        _write(vault, "polled.md", "x", age=0)
        batch = _collect_until(w, lambda b: "polled.md" in b.paths)
    assert batch.paths == {"polled.md"}
