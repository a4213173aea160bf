"""The single write path of the index: scan the vault, then apply the changes in committed batches.

``tropegraph index`` calls ``index_vault`` (= ``prepare_model`` + ``scan`` + ``Pipeline.apply``);
the watcher builds ``Changes`` from file events and calls the same ``Pipeline.apply``.

Two phases, so a vault is searchable by keyword long before it is embedded:

1. **Notes**: each batch of notes is one SQLite transaction holding the notes' rows, turns,
   passages, FTS rows and, for every new passage without a vector, an ``embed_queue`` entry.
   After the first phase every note is parsed, keyword-searchable and mined for metaphors (the
   AFTER_BATCH / AFTER_APPLY hooks).
2. **Embedding**: queued passages are embedded in queue order; each window of vectors is
   committed together with the removal of its queue entries, and added to FAISS.

Kill safety: a kill loses at most the batch of notes or the window of vectors in progress; the
next run redoes exactly that (a note is recorded as indexed only in the transaction that queues
its passages; a vector leaves the queue only in the transaction that stores it). Invariant:
every passage has a vector of the index's model or its hash is queued. FAISS is a cache checked
against SQLite on load (see ``indexer.vectors``). The watcher runs phase 1 for each burst, embeds
that burst's passages at once, and works through an older backlog between bursts.

No re-embedding: vectors are keyed by (model, sha256 of the passage text), so a moved note, a
renamed folder, a re-import that appends turns, or a note restored from the trash finds its vectors.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from indexer import derived, hooks
from indexer.chunking import CHUNKER_VERSION, Chunker
from indexer.embed import Embedder
from indexer.errors import ModelMismatch
from indexer.lexicon import update_lexicon
from indexer.passages import BODY, head_passages, heads, note_sections, note_turns, script_of, turn_passages  # noqa: F401 (note_sections: re-exported)
from indexer.report import Report
from indexer.store import Index
from indexer.textproc import fts_lemmas
from indexer.vectors import to_blob
from vault_schema.errors import NoteReadError, VaultNotFound
from vault_schema.markdown import strip_quote_markers
from vault_schema.models import Note, Turn

REPORT_FOLDER = "Tropegraph"
"""Top-level vault folder where tropegraph writes its reports; never indexed."""
SKIPPED_KINDS = frozenset({"tropegraph-report"})
RACY_SECONDS = 2.0
"""Files modified this close to (or after) their indexing time are re-hashed: mtime ticks are coarse."""
TEMP_PATTERNS = ("*.tmp", ".#*", "~$*", "*.sync-conflict-*", "*.swp", "*~", "*.crdownload", "*.part")

Progress = Callable[[int, int], None]
"""``progress(done, total)``: notes (or, for embedding, passages) processed so far out of ``total``."""
EMBED_MODES = ("all", "new", "none")
#: After embedding every queued passage, embed the index's frequent lemmas not yet embedded
#: (``indexer.lexicon``: search translates query words across scripts with them), when the
#: model is multilingual (``Embedder.multilingual``).
LEXICON = True
"""``Pipeline.apply(embed=…)``: embed every queued passage, only those this call queued, or none."""
NoteLoader = Callable[[Path, str], Note]


HUGE_TURN_CHARS = 262_144
"""A turn longer than this (a pasted log, a book) is chunked section by section, and its passages
are committed a slice at a time (``batch_passages`` / ``batch_seconds``), resumable after a kill:
a 30 MB note is ~166k passages, which used to be one transaction of many minutes."""
SECTION_CHARS = 65_536
"""Section size of a huge turn (cut at the next blank line, else line end, else space)."""

PASSAGE_TOKENS = 64
"""Target passage size in tokens. Smaller than the model window on purpose: on the planted eval a
one-sentence answer inside a nine-sentence turn ranked 28th as one 512-token passage and 4th as
64-token passages, with every needle in the hybrid top 5 (at 40 tokens semantic MRR fell from 0.63
to 0.42). The cost in embedding time is about the same: tokens are tokens."""


def make_chunker(embedder: Embedder) -> Chunker:
    """The passage splitter the pipeline uses for ``embedder`` (benchmarks use it to embed the same texts)."""
    return Chunker(min(PASSAGE_TOKENS, embedder.max_tokens - 2), embedder.count_tokens)


def is_ignored_dir(relpath: str) -> bool:
    """True for folders never walked: dot-folders (``.obsidian``, ``.trash``, ``.git``) and tropegraph's reports."""
    parts = PurePosixPath(relpath).parts
    return bool(parts) and (parts[0] == REPORT_FOLDER or any(p.startswith(".") for p in parts))


def is_ignored(relpath: str) -> bool:
    """True for vault paths that are not notes to index: anything but ``*.md``, anything inside
    an ignored folder, and editor/sync temporaries. The watcher uses the same rule."""
    path = PurePosixPath(relpath)
    if not path.parts or path.is_absolute():
        return True
    name = path.name
    if not name.lower().endswith(".md") or name.startswith("."):
        return True
    if path.parent != PurePosixPath(".") and is_ignored_dir(str(path.parent)):
        return True
    return any(fnmatch.fnmatchcase(name, pat) for pat in TEMP_PATTERNS)


def walk(vault: Path, warnings: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """Every note in the vault as ``{relpath: (size, mtime_ns)}`` (POSIX paths, sorted walk).

    Only regular files count: a FIFO, socket or device named ``*.md`` (reading it could block
    or never end) and a symlinked file leading out of the vault are skipped with a warning
    naming the path. Symlinked folders are followed, as Obsidian does, once each: a link back
    into the vault or into a folder already walked is skipped (no loops, no duplicates).
    """
    from vault_schema import files

    found: dict[str, tuple[int, int]] = {}
    followed = [os.path.realpath(vault)]  # real folders whose whole tree is walked
    stack = [""]
    while stack:
        rel = stack.pop()
        folder = vault / rel if rel else vault
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            if not rel:
                raise VaultNotFound(f"vault folder {vault} cannot be read ({exc.strerror or exc})") from exc
            if warnings is not None:
                warnings.append(f"{rel}: folder skipped, cannot be read ({exc.strerror or exc})")
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            try:
                if entry.is_dir():  # follows a symlinked folder: it is part of the vault
                    if is_ignored_dir(child):
                        continue
                    if entry.is_symlink():
                        real = os.path.realpath(entry.path)
                        if any(real == f or real.startswith(f.rstrip(os.sep) + os.sep) for f in followed):
                            if warnings is not None:
                                warnings.append(
                                    f"{child}: folder link skipped, it leads to {real}, which is already indexed"
                                )
                            continue
                        followed.append(real)
                    stack.append(child)
                    continue
                if is_ignored(child):
                    continue
                st = entry.stat()
                files.check_regular(child, st)
                if entry.is_symlink():
                    target = files.outside_link(vault, child)
                    if target is not None:
                        raise files.OutsideLink(child, target)
            except files.NotRegularFile as exc:
                if warnings is not None:
                    warnings.append(f"{child}: skipped, {exc.strerror} (only plain files are read)")
                continue
            except files.OutsideLink as exc:
                if warnings is not None:
                    warnings.append(f"{child}: skipped, {exc.strerror} (only files inside the vault are read)")
                continue
            except OSError as exc:
                if warnings is not None:
                    warnings.append(f"{child}: skipped, cannot be read ({exc.strerror or exc})")
                continue
            found[child] = (st.st_size, st.st_mtime_ns)
    return found


def sha256_file(path: Path) -> str:
    """sha256 of a note file: regular files only, never blocking, capped (``vault_schema.files``)."""
    from vault_schema import files
    from vault_schema.parse import MAX_NOTE_BYTES

    return files.sha256(path, max_bytes=MAX_NOTE_BYTES)


@dataclass
class Changes:
    """What to do to bring the index in line with the vault (vault-relative POSIX paths)."""

    created: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    """Paths whose size/mtime changed (or every path, for ``--full``); unchanged content is detected by sha256."""
    deleted: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    """``(old, new)`` pairs: a vanished path and a new one with the same sha256."""
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)
    full: bool = False
    """Re-parse notes even when their sha256 is unchanged."""

    @property
    def total(self) -> int:
        return len(self.created) + len(self.modified) + len(self.deleted) + len(self.moved)

    def __bool__(self) -> bool:
        return self.total > 0

    @property
    def seen(self) -> int:
        return len(self.created) + len(self.modified) + len(self.moved) + self.unchanged


def needs_rechunk(index: Index) -> bool:
    """True when the index's passages were cut by another chunker version (see ``CHUNKER_VERSION``)."""
    if index.get_meta("chunker") == CHUNKER_VERSION:
        return False
    return index.db.execute("SELECT 1 FROM notes LIMIT 1").fetchone() is not None


def scan(vault: Path, index: Index, *, full: bool = False) -> Changes:
    """Compare the vault with the index: size+mtime first, sha256 only to pair moves.

    An index whose passages another chunker version made re-reads every note (``full``); only
    passages whose text changed are embedded again."""
    if not full and needs_rechunk(index):
        index.notify("passages are cut differently since this index was made: re-reading every note "
                     "(only changed passages are embedded)")
        full = True
    changes = Changes(full=full)
    disk = walk(vault, changes.warnings)
    known = {
        p: (s, m, h, at)
        for p, s, m, h, at in index.db.execute("SELECT path, size, mtime_ns, sha256, indexed_at FROM notes")
    }
    new: list[str] = []
    for path, (size, mtime) in disk.items():
        old = known.get(path)
        if old is None:
            new.append(path)
        elif full or (old[0], old[1]) != (size, mtime) or mtime >= (old[3] - RACY_SECONDS) * 1e9:
            # changed, or "racy": written so close to when it was indexed that an edit keeping
            # size and mtime tick could hide; apply compares sha256 and skips it if unchanged
            changes.modified.append(path)
        else:
            changes.unchanged += 1
    vanished = sorted(p for p in known if p not in disk)
    by_sha: dict[str, list[str]] = {}
    for p in vanished:
        by_sha.setdefault(known[p][2], []).append(p)
    for path in sorted(new):
        if by_sha:
            try:
                sha = sha256_file(vault / path)
            except OSError:
                sha = ""
            if by_sha.get(sha):
                old_path = by_sha[sha].pop(0)
                changes.moved.append((old_path, path))
                continue
        changes.created.append(path)
    moved_from = {old for old, _ in changes.moved}
    changes.deleted = [p for p in vanished if p not in moved_from]
    changes.modified.sort()
    return changes


def sections(text: str, size: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` spans covering ``text``: about ``size`` characters each, cut at the first
    blank line (else line end, else space) at or after ``size``. Deterministic, so a resumed run
    chunks the rest of a turn exactly as an uninterrupted one does."""
    size = size or SECTION_CHARS
    out: list[tuple[int, int]] = []
    pos, n = 0, len(text)
    while pos < n:
        if n - pos <= size:
            out.append((pos, n))
            break
        cut = pos + size
        for sep in ("\n\n", "\n", " "):
            i = text.find(sep, pos + size, pos + 4 * size)
            if i >= 0:
                cut = i + len(sep)
                break
        out.append((pos, cut))
        pos = cut
    return out


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _default_loader(root: Path, relpath: str) -> Note:
    from vault_schema.parse import load_note

    return load_note(root, relpath)


class _NoteFailed(Exception):
    pass


# -- model ------------------------------------------------------------------------------------
def prepare_model(index: Index, embedder: Embedder, *, full: bool = False) -> list[int]:
    """Record ``embedder`` as the index's model, or switch to it with ``full=True``.

    Switching wipes every note (so the vault is re-read and re-chunked for the new window) and the
    old model's vectors, in one transaction. Returns the turn ids removed (already passed to hooks).
    Raises ``ModelMismatch`` when the index holds another model's vectors and ``full`` is False.
    """
    current = index.model
    if current == embedder.model_id:
        return []
    if current and not full:
        raise ModelMismatch(current, embedder.model_id)
    db = index.db
    db.execute("BEGIN IMMEDIATE")
    try:
        removed = [r[0] for r in db.execute("SELECT id FROM turns")] if current else []
        if current:
            db.execute("DELETE FROM notes")
            db.execute("DELETE FROM passage_fts")
            db.execute("DELETE FROM embed_queue")
        db.execute("DELETE FROM vectors WHERE model != ?", (embedder.model_id,))
        if removed:
            derived.bump(db)
        index.set_meta("engine", embedder.engine)
        index.set_meta("model", embedder.model_id)
        index.set_meta("model_arg", embedder.model_arg or "")
        index.set_meta("dim", embedder.dim)
        index.set_meta("max_tokens", embedder.max_tokens)
        index.set_meta("chunker", CHUNKER_VERSION)  # no notes left, so none cut by another version
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    index.drop_vector_cache()
    if current:
        index.notify(f"switched the index from {current} to {embedder.model_id}; re-embedding the vault")
    if removed:
        for problem in hooks.run_after_batch(index, [], removed):
            index.notify(problem)
    return removed


# -- the pipeline -----------------------------------------------------------------------------
@dataclass
class _Note:
    """What the note being written adds to its batch (moved there when it is done, or at a
    mid-note commit of a huge turn)."""

    pending: dict[str, str] = field(default_factory=dict)
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    row: tuple[int, int, int, str] | None = None
    """``(note id, size, mtime_ns, sha256)`` as stored once the note is complete."""
    checkpoints: int = 0


@dataclass
class _Batch:
    notes: int = 0
    started: float = field(default_factory=time.monotonic)
    pending: dict[str, str] = field(default_factory=dict)  # passage hash -> text to embed
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


def pending_embeddings(db: sqlite3.Connection) -> int:
    """Passages waiting in the embedding queue (cheap: 0 as soon as the index is fully embedded)."""
    return int(db.execute("SELECT count(*) FROM embed_queue").fetchone()[0])


LAST_RUN_KEY = "last_run"
LAST_RUN_MAX_WARNINGS = 500


def record_last_run(index: Index, report: Report) -> None:
    """Keep what the run just finished had to say (failures, warnings) in meta ``last_run``, so
    ``tropegraph status`` can show it later; the notes' own parse warnings stay on the notes."""
    record = {
        "finished": time.time(),
        "notes_seen": report.notes_seen,
        "notes_changed": report.notes_changed,
        "notes_failed": report.notes_failed,
        "failures": [{"path": f.path, "message": f.message} for f in report.failures],
        "warnings": report.warnings[:LAST_RUN_MAX_WARNINGS],
        "warnings_total": len(report.warnings),
    }
    index.db.execute("BEGIN IMMEDIATE")
    try:
        index.set_meta(LAST_RUN_KEY, json.dumps(record, ensure_ascii=False))
        index.db.execute("COMMIT")
    except BaseException:
        index.db.execute("ROLLBACK")
        raise


class Pipeline:
    """Applies ``Changes`` to an index opened for writing.

    ``batch_notes`` (default ``TROPEGRAPH_BATCH_NOTES`` or 200), ``batch_passages`` (new
    passages per batch of notes, default 2,000) and ``batch_seconds`` bound how much one
    transaction of the notes phase holds, so how much a kill can lose; ``embed_window``
    (default ``TROPEGRAPH_EMBED_WINDOW`` or 8 engine batches, at least 64) is how many vectors
    one embedding commit holds.
    ``loader`` reads a note (default ``vault_schema.parse.load_note``). ``on_commit(saved)`` is
    called after each committed batch of the notes phase with the number of notes saved so far
    by this ``apply`` (``notes_saved``): what an interrupted run keeps.
    """

    def __init__(
        self,
        index: Index,
        vault: Path,
        embedder: Embedder,
        *,
        batch_notes: int | None = None,
        batch_passages: int | None = None,
        batch_seconds: float = 10.0,
        embed_window: int | None = None,
        loader: NoteLoader | None = None,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        if index.readonly:
            raise ValueError("Pipeline needs an index opened for writing")
        self.index = index
        self.db: sqlite3.Connection = index.db
        self.vault = Path(vault)
        self.embedder = embedder
        self.model = embedder.model_id
        self.batch_notes = batch_notes or int(os.environ.get("TROPEGRAPH_BATCH_NOTES") or 200)
        self.batch_passages = batch_passages or 2000
        self.batch_seconds = batch_seconds
        self.embed_window = embed_window or int(
            os.environ.get("TROPEGRAPH_EMBED_WINDOW") or max(64, 8 * embedder.batch_size)
        )
        self._queued: dict[str, str] = {}  # hash -> text queued by the current apply
        # the batch and note in progress, and how to report progress (a huge turn commits mid-note)
        self._batch = _Batch()
        self._note = _Note()
        self._report = Report()
        self._progress: Callable[[], None] = lambda: None
        self.loader = loader or _default_loader
        self.chunker = make_chunker(embedder)
        self.on_commit = on_commit
        self.notes_saved = 0
        self.huge_turn_chars = HUGE_TURN_CHARS

    # -- public ---------------------------------------------------------------------------------
    def apply(
        self,
        changes: Changes,
        progress: Progress | None = None,
        *,
        gc: bool = True,
        sweep: bool | None = None,
        save_vectors: bool = True,
        embed: str = "all",
        embed_progress: Progress | None = None,
        lexicon_progress: Progress | None = None,
    ) -> Report:
        """Apply ``changes`` in committed batches (notes first, then embedding); return what was done.

        ``embed``: ``"all"`` embeds every queued passage (the whole backlog, as ``tropegraph
        index`` does), ``"new"`` only those this call queued (a watcher burst: searchable by
        meaning at once, an older backlog left for idle time), ``"none"`` leaves them queued
        (``embed_pending`` later). ``embed_progress(done, total)`` follows the embedding phase;
        like ``progress`` it may raise to stop (the window in progress is not committed).
        ``lexicon_progress(done, total)`` follows the last phase of ``"all"``: the vault's words
        embedded for search across languages (``indexer.lexicon``; committed batch by batch).

        ``gc`` deletes vectors no passage uses any more, at the very end (so a note deleted early and
        re-created later in the same run keeps its vectors). ``sweep`` (default: same as ``gc``)
        queues any stored passage that has neither a vector nor a queue entry (a safety net: the
        queue survives kills); it reads every passage (~0.1 s at 175k), so the watcher's small batches pass
        ``gc=False`` and leave both to catch-up and reconciliation runs. ``save_vectors`` writes
        the FAISS file at the end (hundreds of MB on a large vault); the watcher passes False for
        its small batches and saves on its own schedule, since readers top up from SQLite anyway.
        """
        if embed not in EMBED_MODES:
            raise ValueError(f"embed must be one of {EMBED_MODES}, not {embed!r}")
        sweep = gc if sweep is None else sweep
        t0 = time.monotonic()
        self._queued = {}
        self.notes_saved = 0
        if self.index.model is None:
            prepare_model(self.index, self.embedder)
        elif self.index.model != self.model:
            raise ModelMismatch(self.index.model, self.model)
        report = Report(model=self.model, full=changes.full)
        report.notes_unchanged = changes.unchanged
        report.notes_seen = changes.seen
        report.warnings.extend(changes.warnings)
        self.index.vector_index()  # load (and repair) the FAISS cache before writing
        work: list[tuple[str, str, str | None]] = (
            [("delete", p, None) for p in changes.deleted]
            + [("move", old, new) for old, new in changes.moved]
            + [("upsert", p, None) for p in [*changes.created, *changes.modified]]
        )
        total = len(work)
        self._batch = batch = _Batch()
        self._report = report
        done = 0
        self._progress = (lambda: progress(done, total)) if progress else (lambda: None)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for done, (action, path, new_path) in enumerate(work, 1):  # done: read by _progress
                self._one(action, path, new_path, changes.full, report)
                batch = self._batch  # a huge note may have committed (and replaced) it
                batch.notes += 1
                if (
                    batch.notes >= self.batch_notes
                    or len(batch.pending) >= self.batch_passages
                    or time.monotonic() - batch.started >= self.batch_seconds
                ):
                    self._commit(batch, report)
                    self._batch = batch = _Batch()
                    self.db.execute("BEGIN IMMEDIATE")
                if progress:
                    progress(done, total)
            if sweep:
                self._sweep_missing(batch, report)
            self._commit(batch, report)
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("BEGIN IMMEDIATE")
        self.index.set_meta("updated_at", time.time())
        self.index.set_meta("vault", str(self.vault))
        if changes.full:  # every note re-read and re-cut
            self.index.set_meta("chunker", CHUNKER_VERSION)
        self.db.execute("COMMIT")
        report.warnings.extend(hooks.run_after_apply(self.index))  # e.g. a paced metaphor update
        record_last_run(self.index, report)
        report.notes_seconds = time.monotonic() - t0  # every note keyword-searchable from here on
        if gc:  # before embedding: queue entries of passages deleted in this run are dropped
            self.collect_garbage(report)
        if embed == "all":
            self.embed_pending(report, embed_progress)
            if LEXICON and self.embedder.multilingual:
                t = time.monotonic()
                update_lexicon(self.db, self.embedder.embed_terms, self.model, progress=lexicon_progress)
                report.embed_seconds += time.monotonic() - t
        elif embed == "new":
            self.embed_pending(report, embed_progress, only=self._queued)
        report.passages_pending = pending_embeddings(self.db)
        if save_vectors:
            self.index.save_vectors()
        report.seconds = time.monotonic() - t0
        return report

    def embed_pending(
        self,
        report: Report | None = None,
        progress: Progress | None = None,
        *,
        only: dict[str, str] | None = None,
        max_seconds: float | None = None,
    ) -> int:
        """Embed queued passages in queue order; return how many vectors were stored.

        Each window of ``embed_window`` passages is embedded (sorted by length, in engine
        batches) with no transaction open, then its vectors are inserted and its queue entries
        removed in one transaction, and FAISS is topped up. ``only`` (hash -> text) restricts
        this to those passages if they are still queued; ``max_seconds`` stops after the window
        that passes it (the watcher embeds a backlog between bursts). ``progress(done, total)``
        may raise (``StopRequested``): the window in progress is then simply not committed.
        """
        db = self.db
        report = report if report is not None else Report(model=self.model)
        t0 = time.monotonic()
        if only is not None:
            wanted = list(only)
            queued: set[str] = set()
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                queued.update(
                    r[0]
                    for r in db.execute(
                        f"SELECT hash FROM embed_queue WHERE hash IN ({','.join('?' * len(part))})", part
                    )
                )
            todo: list[tuple[str, str | None]] | None = [(h, only[h]) for h in wanted if h in queued]
            total = len(todo)
        else:
            todo = None
            total = pending_embeddings(db)
        if total == 0:
            return 0
        if progress:
            progress(0, total)
        size = max(1, self.embedder.batch_size)
        done = stored = 0
        pos = 0
        while True:
            if todo is not None:
                rows = todo[pos : pos + self.embed_window]
                pos += len(rows)
            else:
                rows = db.execute(
                    "SELECT q.hash, (SELECT p.text FROM passages p WHERE p.hash = q.hash LIMIT 1) "
                    "FROM embed_queue q ORDER BY q.id LIMIT ?",
                    (self.embed_window,),
                ).fetchall()
            if not rows:
                break
            items = sorted(((h, t) for h, t in rows if t is not None), key=lambda kv: len(kv[1]))
            out: list[tuple[str, bytes]] = []
            t = time.monotonic()
            for i in range(0, len(items), size):
                chunk = items[i : i + size]
                vecs = self.embedder.embed_passages([text for _, text in chunk])
                out.extend((h, to_blob(v)) for (h, _), v in zip(chunk, vecs, strict=True))
                done += len(chunk)
                if progress:
                    progress(min(done, total), total)
            report.embed_seconds += time.monotonic() - t
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO vectors (model, hash, vector) VALUES (?, ?, ?) "
                    "ON CONFLICT(model, hash) DO NOTHING",
                    [(self.model, h, blob) for h, blob in out],
                )
                # entries without a passage any more (deleted since they were queued) leave too
                db.executemany("DELETE FROM embed_queue WHERE hash = ?", [(h,) for h, _ in rows])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            stored += len(out)
            report.passages_embedded += len(out)
            report.embed_batches += 1
            self.index.refresh_vectors()
            if max_seconds is not None and time.monotonic() - t0 >= max_seconds:
                break
        return stored

    def collect_garbage(self, report: Report | None = None) -> int:
        """Delete this model's vectors (and queue entries) that no passage refers to; return how
        many vectors."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "DELETE FROM embed_queue WHERE NOT EXISTS (SELECT 1 FROM passages p WHERE p.hash = embed_queue.hash)"
            )
            gone = [
                r[0]
                for r in self.db.execute(
                    "DELETE FROM vectors WHERE model = ? AND NOT EXISTS "
                    "(SELECT 1 FROM passages p WHERE p.hash = vectors.hash) RETURNING id",
                    (self.model,),
                )
            ]
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if gone:
            self.index.refresh_vectors(removed_ids=gone)
        if report is not None:
            report.vectors_removed += len(gone)
        return len(gone)

    # -- batches --------------------------------------------------------------------------------
    def _commit(self, batch: _Batch, report: Report) -> None:
        """Queue the batch's new passages for embedding, commit, then run the hooks."""
        if batch.pending:
            self.db.executemany(
                "INSERT OR IGNORE INTO embed_queue (hash) VALUES (?)", [(h,) for h in batch.pending]
            )
            report.passages_queued += len(batch.pending)
        if batch.added or batch.removed:
            derived.bump(self.db)  # derived data is behind these turns until its hook records it
        self.db.execute("COMMIT")
        self._queued.update(batch.pending)
        report.batches += 1
        self.notes_saved += batch.notes
        if self.on_commit is not None:
            self.on_commit(self.notes_saved)
        if batch.added or batch.removed:
            added = sorted(set(batch.added))
            removed = sorted(set(batch.removed))
            report.warnings.extend(hooks.run_after_batch(self.index, added, removed))

    def _sweep_missing(self, batch: _Batch, report: Report) -> None:
        """Queue passages that have neither a vector nor a queue entry (only a bug or a database
        edited by hand leaves them; the queue itself survives kills)."""
        rows = self.db.execute(
            "SELECT p.hash, min(p.text) FROM passages p WHERE NOT EXISTS "
            "(SELECT 1 FROM vectors v WHERE v.model = ? AND v.hash = p.hash) "
            "AND NOT EXISTS (SELECT 1 FROM embed_queue q WHERE q.hash = p.hash) GROUP BY p.hash",
            (self.model,),
        ).fetchall()
        for h, text in rows:
            batch.pending.setdefault(h, text)

    # -- one note -------------------------------------------------------------------------------
    def _one(self, action: str, path: str, new_path: str | None, full: bool, report: Report) -> None:
        self.db.execute("SAVEPOINT note")
        self._note = note = _Note()
        pending, added, removed = note.pending, note.added, note.removed
        try:
            if action == "delete":
                if self._delete(path, removed):
                    report.notes_removed += 1
                    report.turns_removed += len(removed)
            elif action == "move":
                assert new_path is not None
                if self._move(path, new_path, removed):
                    report.notes_moved += 1
                    self._upsert(new_path, full, pending, added, removed, report, moved=True)
                else:
                    self._upsert(new_path, full, pending, added, removed, report)
            else:
                self._upsert(path, full, pending, added, removed, report)
        except _NoteFailed as exc:
            self.db.execute("ROLLBACK TO note")
            self.db.execute("RELEASE note")
            report.fail(new_path or path, str(exc))
            return
        except (sqlite3.IntegrityError, ValueError, UnicodeError) as exc:
            self.db.execute("ROLLBACK TO note")
            self.db.execute("RELEASE note")
            report.fail(new_path or path, f"could not be indexed ({type(exc).__name__}: {exc})")
            return
        if note.checkpoints and note.row is not None:  # complete at last: the note's real state
            note_id, size, mtime, sha = note.row
            self.db.execute(
                "UPDATE notes SET size = ?, mtime_ns = ?, sha256 = ? WHERE id = ?", (size, mtime, sha, note_id)
            )
        self.db.execute("RELEASE note")
        self._flush_note(self._batch)

    def _flush_note(self, batch: _Batch, *, keep: int | None = None) -> None:
        """Move the note's pending passages and added/removed turns into ``batch`` (``keep``: a
        turn still being written stays with the note, so hooks see it once it is whole)."""
        note = self._note
        for h, text in note.pending.items():
            batch.pending.setdefault(h, text)
        note.pending.clear()
        batch.added.extend(t for t in note.added if t != keep)
        note.added[:] = [keep] if keep is not None and keep in note.added else []
        batch.removed.extend(note.removed)
        note.removed.clear()

    def _checkpoint(self, turn_id: int, text_sha: str, done_chars: int) -> None:
        """Commit a huge turn's passages so far (and the batch before it), marked part-written,
        then go on in a new transaction. See ``m006_partial_turns``."""
        db = self.db
        note = self._note
        assert note.row is not None
        db.execute("UPDATE notes SET size = -1, sha256 = '' WHERE id = ?", (note.row[0],))
        db.execute("UPDATE turns SET text_hash = '' WHERE id = ?", (turn_id,))
        db.execute(
            "INSERT INTO partial_turns (turn_id, text_hash, done_chars) VALUES (?, ?, ?) ON CONFLICT(turn_id) "
            "DO UPDATE SET text_hash = excluded.text_hash, done_chars = excluded.done_chars",
            (turn_id, text_sha, done_chars),
        )
        db.execute("RELEASE note")
        self._flush_note(self._batch, keep=turn_id)
        self._commit(self._batch, self._report)
        self._batch = _Batch()
        note.checkpoints += 1
        db.execute("BEGIN IMMEDIATE")
        db.execute("SAVEPOINT note")
        self._progress()  # a watcher asked to stop stops here (the committed slices stay)

    def _note_turn_ids(self, note_id: int) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM turns WHERE note_id = ?", (note_id,))]

    def _delete(self, path: str, removed: list[int]) -> bool:
        row = self.db.execute("SELECT id FROM notes WHERE path = ?", (path,)).fetchone()
        if row is None:
            return False
        removed.extend(self._note_turn_ids(row[0]))
        self.db.execute("DELETE FROM notes WHERE id = ?", (row[0],))
        return True

    def _move(self, old: str, new: str, removed: list[int]) -> bool:
        """Re-path the note row (keeping its id and turns); False when ``old`` isn't indexed."""
        row = self.db.execute("SELECT id FROM notes WHERE path = ?", (old,)).fetchone()
        if row is None:
            return False
        if old != new:
            self._delete(new, removed)
            self.db.execute("UPDATE notes SET path = ? WHERE id = ?", (new, row[0]))
        return True

    def _read(self, path: str) -> tuple[int, int, str]:
        """``(size, mtime_ns, sha256)`` of the file (parsed later, only when the hash changed).

        Only regular files inside the vault are read (``vault_schema.files``)."""
        from vault_schema import files
        from vault_schema.parse import read_error

        full = self.vault / path
        try:
            st = full.stat()
            files.check_regular(full, st)
            target = files.outside_link(self.vault, path)
            if target is not None:
                raise files.OutsideLink(full, target)
            sha = sha256_file(full)
        except OSError as exc:
            raise _NoteFailed(read_error(path, exc).reason) from None
        return st.st_size, st.st_mtime_ns, sha

    def _upsert(
        self,
        path: str,
        force: bool,
        pending: dict[str, str],
        added: list[int],
        removed: list[int],
        report: Report,
        *,
        moved: bool = False,
    ) -> None:
        """Parse and store one note. ``force`` (``--full``) re-parses and re-chunks unchanged notes;
        ``moved`` re-parses (title and warnings name the path) but keeps unchanged turns' passages."""
        db = self.db
        size, mtime, sha = self._read(path)
        row = db.execute("SELECT id, sha256, size, mtime_ns FROM notes WHERE path = ?", (path,)).fetchone()
        if row is not None and row[1] == sha and not (force or moved):
            db.execute(
                "UPDATE notes SET size = ?, mtime_ns = ?, indexed_at = ? WHERE id = ?",
                (size, mtime, time.time(), row[0]),
            )
            report.notes_unchanged += 1
            return
        try:
            note = self.loader(self.vault, path)
        except NoteReadError as exc:
            raise _NoteFailed(exc.reason) from None
        if note.sha256 and note.sha256 != sha:
            sha = note.sha256  # the file changed between hashing and reading: store what was parsed
        if not moved:
            report.notes_changed += 1
        for w in note.warnings:
            report.warnings.append(str(w))

        skipped = note.kind in SKIPPED_KINDS
        values = (
            size,
            mtime,
            sha,
            note.kind,
            note.title,
            note.conversation.conversation_id if note.conversation and not skipped else None,
            "{}" if skipped else json.dumps(note.frontmatter, ensure_ascii=False, default=str),
            "[]" if skipped else json.dumps(list(note.aliases), ensure_ascii=False),
            json.dumps([w.to_dict() for w in note.warnings], ensure_ascii=False),
            time.time(),
        )
        if row is None:
            note_id = db.execute(
                "INSERT INTO notes (size, mtime_ns, sha256, kind, title, conversation_id, frontmatter, aliases, "
                "warnings, indexed_at, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (*values, path),
            ).fetchone()[0]
        else:
            note_id = row[0]
            db.execute(
                "UPDATE notes SET size = ?, mtime_ns = ?, sha256 = ?, kind = ?, title = ?, conversation_id = ?, "
                "frontmatter = ?, aliases = ?, warnings = ?, indexed_at = ? WHERE id = ?",
                (*values, note_id),
            )
        self._note.row = (note_id, size, mtime, sha)
        if skipped:
            report.notes_skipped += 1

        # conversation (or a plain note's pseudo-conversation) and its turns
        conv_id: str | None = None
        turns: list[Turn] = []
        paths: list[tuple[str, ...]] | None = None
        if skipped:
            pass
        elif note.kind == "conversation" and note.conversation is not None:
            conv_id = note.conversation.conversation_id
            turns = list(note.conversation.turns)
        elif note.kind == "note":
            conv_id = f"note:{path}"
            turns, paths = [], []
            for turn, heading_path in note_turns(note):
                turns.append(turn)
                paths.append(heading_path)
        for (old_conv,) in db.execute(
            "SELECT id FROM conversations WHERE note_id = ?", (note_id,)
        ).fetchall():
            if old_conv != conv_id:
                removed.extend(
                    r[0] for r in db.execute("SELECT id FROM turns WHERE conversation_id = ?", (old_conv,))
                )
                db.execute("DELETE FROM conversations WHERE id = ?", (old_conv,))
        if conv_id is not None:
            self._write_conversation(
                note, note_id, conv_id, turns, heads(note, turns, paths), force, pending, added, removed, report
            )
        else:
            # no turns any more (kind changed): drop stray turns of this note
            stray = self._note_turn_ids(note_id)
            if stray:
                removed.extend(stray)
                db.execute("DELETE FROM turns WHERE note_id = ?", (note_id,))

        db.execute("DELETE FROM links WHERE note_id = ?", (note_id,))
        db.execute("DELETE FROM tags WHERE note_id = ?", (note_id,))
        if not skipped:
            db.executemany(
                "INSERT INTO links (note_id, target, heading, block, alias, embed, kind, line) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (note_id, ln.target, ln.heading, ln.block, ln.alias, int(ln.embed), ln.kind, ln.line)
                    for ln in note.links
                ],
            )
            db.executemany(
                "INSERT INTO tags (note_id, name, source, line) VALUES (?, ?, ?, ?)",
                [(note_id, t.name.casefold(), t.source, t.line) for t in note.tags],
            )

    def _write_conversation(
        self,
        note: Note,
        note_id: int,
        conv_id: str,
        turns: list[Turn],
        turn_heads: list[tuple[int, str]],
        force: bool,
        pending: dict[str, str],
        added: list[int],
        removed: list[int],
        report: Report,
    ) -> None:
        db = self.db
        owner = db.execute(
            "SELECT c.note_id, n.path FROM conversations c JOIN notes n ON n.id = c.note_id WHERE c.id = ?",
            (conv_id,),
        ).fetchone()
        if owner is not None and owner[0] != note_id:
            raise _NoteFailed(
                f"conversation {conv_id} is already indexed from {owner[1]} (a duplicate export?); "
                "delete one of the two notes"
            )
        conv = note.conversation
        conv_values = (
            note_id,
            conv.title if conv else note.title,
            conv.provider if conv else None,
            conv.plugin_version if conv else None,
            conv.created.isoformat(timespec="seconds") if conv and conv.created else None,
            conv.updated.isoformat(timespec="seconds") if conv and conv.updated else None,
            conv.url if conv else None,
            conv.utc_offset if conv else None,
        )
        db.execute(  # created/updated are local like turns.time; utc_offset when the note shows it
            "INSERT INTO conversations (note_id, title, provider, plugin_version, created, updated, url, utc_offset, id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET note_id = excluded.note_id, "
            "title = excluded.title, provider = excluded.provider, plugin_version = excluded.plugin_version, "
            "created = excluded.created, updated = excluded.updated, url = excluded.url, "
            "utc_offset = excluded.utc_offset",
            (*conv_values, conv_id),
        )
        existing = {}
        stamps = {}  # role and time: derived data copies them, so a change re-derives the turn
        for tid, uid, text_hash, role, when in db.execute(
                "SELECT id, uid, text_hash, role, time FROM turns WHERE conversation_id = ?", (conv_id,)):
            existing[uid] = (tid, text_hash)
            stamps[uid] = (role, when)
        seen: set[str] = set()
        had_head = {
            r[0]
            for r in db.execute(
                "SELECT DISTINCT p.turn_id FROM passages p JOIN turns t ON t.id = p.turn_id "
                "WHERE t.conversation_id = ? AND p.kind != ?", (conv_id, BODY),
            )
        }
        for position, turn in enumerate(turns):
            head = turn_heads[position]
            uid = turn.uid
            n = 1
            while uid in seen:  # a malformed note repeating a UID: keep both turns
                n += 1
                uid = f"{turn.uid}#{n}"
            seen.add(uid)
            # quote markers of nested quotes are syntax, not words: the index (text, passages,
            # metaphors) holds the words only — a 10,000-deep quote made millions of `>` tokens
            text = strip_quote_markers(turn.text)
            text_hash = _sha(text)
            values = (
                note_id,
                position,
                turn.role,
                turn.model,
                turn.time.isoformat(timespec="seconds") if turn.time else None,
                text,
                text_hash,
                int(turn.uid_derived),
            )
            old = existing.get(uid)
            if old is None:
                turn_id = db.execute(
                    "INSERT INTO turns (note_id, position, role, model, time, text, text_hash, uid_derived, "
                    "conversation_id, uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (*values, conv_id, uid),
                ).fetchone()[0]
                report.turns_added += 1
                added.append(turn_id)
                self._write_passages(turn_id, text, head, pending, report, replace=False)
                continue
            turn_id, old_hash = old
            db.execute(
                "UPDATE turns SET note_id = ?, position = ?, role = ?, model = ?, time = ?, text = ?, "
                "text_hash = ?, uid_derived = ? WHERE id = ?",
                (*values, turn_id),
            )
            if old_hash != text_hash:
                report.turns_updated += 1
                added.append(turn_id)
                self._write_passages(turn_id, text, head, pending, report, replace=True)
            elif force:
                self._write_passages(turn_id, text, head, pending, report, replace=True, only_if_changed=True)
            elif head[1] or turn_id in had_head:  # same text; the title or heading path may have changed
                self._write_head(turn_id, head, pending, report)
            if old_hash == text_hash and stamps[uid] != (values[2], values[4]):
                added.append(turn_id)
        gone = [tid for uid, (tid, _) in existing.items() if uid not in seen]
        if gone:
            removed.extend(gone)
            report.turns_removed += len(gone)
            db.executemany("DELETE FROM turns WHERE id = ?", [(tid,) for tid in gone])

    def _write_passages(
        self,
        turn_id: int,
        text: str,
        head: tuple[int, str],
        pending: dict[str, str],
        report: Report,
        *,
        replace: bool,
        only_if_changed: bool = False,
    ) -> None:
        db = self.db
        if len(text) > self.huge_turn_chars:
            self._write_huge_passages(turn_id, text, pending, report, replace=replace)
            self._write_head(turn_id, head, pending, report)
            return
        rows = [(p.kind, p.start, p.text, _sha(p.text)) for p in turn_passages(self.chunker, text, head)]
        if replace:
            if only_if_changed:
                old = db.execute(
                    "SELECT kind, start, hash FROM passages WHERE turn_id = ? ORDER BY seq", (turn_id,)
                ).fetchall()
                if [(k, s, h) for k, s, _, h in rows] == [tuple(r) for r in old]:
                    return
            db.execute("DELETE FROM passages WHERE turn_id = ?", (turn_id,))
        self._insert_passages(turn_id, 0, rows, pending, report)

    def _write_head(self, turn_id: int, head: tuple[int, str], pending: dict[str, str], report: Report) -> None:
        """Bring the head passages of a turn whose text is unchanged up to date (a renamed note)."""
        db = self.db
        rows = [(p.kind, 0, p.text, _sha(p.text)) for p in head_passages(head)]
        old = db.execute(
            "SELECT kind, hash FROM passages WHERE turn_id = ? AND kind != ? ORDER BY seq", (turn_id, BODY)
        ).fetchall()
        if [tuple(r) for r in old] == [(k, h) for k, _, _, h in rows]:
            return
        db.execute("DELETE FROM passages WHERE turn_id = ? AND kind != ?", (turn_id, BODY))
        if rows:
            seq = db.execute("SELECT coalesce(max(seq) + 1, 0) FROM passages WHERE turn_id = ?", (turn_id,)).fetchone()[0]
            self._insert_passages(turn_id, seq, rows, pending, report)

    def _insert_passages(
        self, turn_id: int, first_seq: int, rows: list[tuple[int, int, str, str]], pending: dict[str, str], report: Report
    ) -> None:
        """Store passages ``(kind, start, text, hash)`` from ``first_seq`` on (see ``_insert_passage``)."""
        for seq, (kind, start, ptext, h) in enumerate(rows, first_seq):
            self._insert_passage(turn_id, seq, start, ptext, h, pending, report, kind=kind)

    def _insert_passage(
        self,
        turn_id: int,
        seq: int,
        start: int,
        ptext: str,
        h: str,
        pending: dict[str, str],
        report: Report,
        *,
        kind: int = BODY,
    ) -> None:
        """Store one passage and its FTS row; queue its text to embed when no vector has it."""
        db = self.db
        pid = db.execute(
            "INSERT INTO passages (turn_id, seq, start, text, hash, kind, script) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            (turn_id, seq, start, ptext, h, kind, script_of(ptext)),
        ).fetchone()[0]
        db.execute("INSERT INTO passage_fts (rowid, lemmas) VALUES (?, ?)", (pid, fts_lemmas(ptext)))
        if h in pending:
            report.passages_reused += 1
            return
        have = db.execute("SELECT 1 FROM vectors WHERE model = ? AND hash = ?", (self.model, h)).fetchone()
        if have:
            report.passages_reused += 1
        else:
            pending[h] = ptext

    def _write_huge_passages(
        self, turn_id: int, text: str, pending: dict[str, str], report: Report, *, replace: bool
    ) -> None:
        """A huge turn, section by section (``sections``), committing a slice of passages every
        ``batch_passages`` or ``batch_seconds``; a part-written turn of the same text resumes
        after its last committed section (nothing committed is lemmatised or embedded again)."""
        db = self.db
        text_sha = _sha(text)
        resume_at, seq = 0, 0
        if replace:
            part = db.execute(
                "SELECT text_hash, done_chars FROM partial_turns WHERE turn_id = ?", (turn_id,)
            ).fetchone()
            if part is not None and part[0] == text_sha:
                resume_at = int(part[1])
                db.execute(  # (a head passage is written after the body: none to keep here)
                    "DELETE FROM passages WHERE turn_id = ? AND (start >= ? OR kind != ?)", (turn_id, resume_at, BODY)
                )
                seq = db.execute("SELECT count(*) FROM passages WHERE turn_id = ?", (turn_id,)).fetchone()[0]
            else:
                db.execute("DELETE FROM passages WHERE turn_id = ?", (turn_id,))
        written = 0
        for a, b in sections(text):
            if b <= resume_at:
                continue
            for c in self.chunker.split(text[a:b]):
                self._insert_passage(turn_id, seq, a + c.start, c.text, _sha(c.text), pending, report)
                seq += 1
                written += 1
            if b < len(text) and (
                written >= self.batch_passages or time.monotonic() - self._batch.started >= self.batch_seconds
            ):
                self._checkpoint(turn_id, text_sha, b)
                written = 0
        if self._note.checkpoints:
            db.execute("UPDATE turns SET text_hash = ? WHERE id = ?", (text_sha, turn_id))
        db.execute("DELETE FROM partial_turns WHERE turn_id = ?", (turn_id,))


def index_vault(
    vault: Path,
    index: Index,
    embedder: Embedder,
    *,
    full: bool = False,
    progress: Progress | None = None,
    on_scanned: Callable[[Changes], None] | None = None,
    embed: str = "all",
    embed_progress: Progress | None = None,
    lexicon_progress: Progress | None = None,
    **pipeline_options: Any,
) -> Report:
    """Bring ``index`` up to date with ``vault``: the whole of ``tropegraph index`` (every note
    parsed and keyword-searchable first, then the queued passages embedded; see ``Pipeline.apply``)."""
    hooks.load_default_hooks()
    if full:
        index.check_integrity()  # a damaged database is reported (with `--repair`), not re-indexed over
    prepare_model(index, embedder, full=full)
    if full:
        index.rebuild_vectors()  # whatever the cache file holds, `--full` rebuilds it from SQLite
    index.set_meta("vault", str(Path(vault)))  # hooks read the vault's curation file from the first batch on
    changes = scan(Path(vault), index, full=full)
    if on_scanned:
        on_scanned(changes)
    return Pipeline(index, Path(vault), embedder, **pipeline_options).apply(
        changes, progress, embed=embed, embed_progress=embed_progress, lexicon_progress=lexicon_progress
    )
