"""Keep the index current while the vault changes: watchdog events → debounced batches → ``Pipeline.apply``.

The watcher is not a second indexer. It only decides *which paths* a burst of events touched,
checks those paths against the disk and the ``notes`` table (size and mtime, as ``scan`` does),
and hands the resulting :class:`~indexer.pipeline.Changes` to the one write path. Anything it may
have missed (watchdog overflows, a sleeping laptop, a network drive) is caught by a periodic full
``scan``.

Threads: watchdog's observer (emitters + dispatcher) feeds watchdog's
:class:`~watchdog.utils.event_debouncer.EventDebouncer`; the debouncer hands each burst to a
queue; the thread that called :func:`run_watch` (the main thread under the CLI, so signals
reach it) owns the index connection and does all the writing.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.utils.event_debouncer import EventDebouncer

# The pipeline's own path rules, so that the watcher and ``scan`` never disagree about what a note is.
from indexer.pipeline import RACY_SECONDS, is_ignored_dir, sha256_file
from indexer.pipeline import is_ignored as is_ignored_note
from vault_schema import files

log = logging.getLogger("tropegraph.watch")

#: Seconds of quiet before a burst is indexed. Short enough to feel live, long enough that an
#: editor's save-per-pause or a Nexus import of hundreds of notes becomes one batch.
DEFAULT_DEBOUNCE = 0.4
#: Seconds between reconciliation scans (0 disables them).
DEFAULT_RECONCILE_INTERVAL = 300.0
#: A file that still looks half-written is indexed anyway once it has not changed for this long
#: (a genuinely truncated note must not wait forever; the parser then reports what is wrong).
DEFAULT_SETTLE = 3.0
#: Batches with at least this many notes get an "indexing N notes…" line before they start.
LONG_BATCH = 50
#: Seconds between saves of the FAISS cache file. Batches do not rewrite it (~260 MB and seconds
#: at 175k vectors): readers top up from SQLite, and a file left older by a kill is reconciled
#: with SQLite on the next load. Catch-up, reconciliation and a clean stop always save.
SAVE_VECTORS_EVERY = 60.0
#: Between bursts the watcher embeds its backlog (a catch-up's passages) in slices of about this
#: many seconds, each committed, so a new save waits at most one slice and a kill loses at most one.
EMBED_SLICE = 1.0
#: Seconds between "embedding: done/total" progress lines while a backlog is embedded.
EMBED_LOG_EVERY = 10.0
#: Words (``indexer.lexicon``: search across languages) embedded per idle slice (~1 s each), and
#: the least seconds between two lexicon updates once it is complete (new notes bring new words).
LEXICON_SLICE = 256
LEXICON_EVERY = 600.0

# Event kinds that mean "this file's content may have changed". FileClosedEvent (inotify
# IN_CLOSE_WRITE) is the most reliable "the writer is done" signal on Linux.
_CONTENT_EVENTS = (FileCreatedEvent, FileModifiedEvent, FileClosedEvent)


class StopRequested(BaseException):
    """Raised inside a batch when SIGINT/SIGTERM asks the watcher to stop.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that per-note ``except Exception``
    handlers in the pipeline do not swallow it and its transaction rolls back.
    """


# --------------------------------------------------------------------------- events → batch


@dataclass
class Batch:
    """What a burst of events touched, before it is checked against the disk and the index.

    Event types are only hints: the final state on disk decides (a file created and deleted
    within one burst is no change at all).
    """

    paths: set[str] = field(default_factory=set)
    """Vault-relative POSIX paths of files that may have been created, changed or deleted."""
    prefixes: set[str] = field(default_factory=set)
    """Folders created, deleted or moved: their whole subtree is compared with the index."""
    moves: dict[str, str] = field(default_factory=dict)
    """Reported file renames, destination → source (the pipeline keeps vectors by hash anyway)."""
    rescan: bool = False
    """Compare the whole vault (reconciliation, or the observer lost track)."""
    events: int = 0
    """How many raw events went into this batch (for logs and tests)."""

    def __bool__(self) -> bool:
        return bool(self.paths or self.prefixes or self.rescan)

    def merge(self, other: Batch) -> None:
        self.paths |= other.paths
        self.prefixes |= other.prefixes
        for dst, src in other.moves.items():
            # a chain a → b → c within a burst is one move a → c
            self.moves[dst] = self.moves.pop(src, src)
        self.rescan = self.rescan or other.rescan
        self.events += other.events


def _rel(vault: str, path: str | bytes) -> str | None:
    """Vault-relative POSIX path of an absolute event path, or None if outside the vault."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        return None
    rel = os.path.relpath(path, vault)
    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
        return None
    return rel.replace(os.sep, "/")


def collect(events: Iterable[FileSystemEvent], vault: str | Path, is_ignored: Callable[[str], bool]) -> Batch:
    """Turn raw watchdog events into a :class:`Batch` of touched paths and folders."""
    vault = os.path.abspath(vault)
    batch = Batch()
    for ev in events:
        batch.events += 1
        src = _rel(vault, ev.src_path)
        if isinstance(ev, DirMovedEvent):
            # A folder rename: inotify also emits a synthetic FileMovedEvent per file inside, but
            # a folder moved in from or out of the vault has only one side; rescanning both
            # subtrees covers every case.
            dst = _rel(vault, ev.dest_path)
            for d in (src, dst):
                if d is not None and not is_ignored_dir(d):
                    batch.prefixes.add(d)
        elif isinstance(ev, (DirCreatedEvent, DirDeletedEvent)):
            if src is not None and not is_ignored_dir(src):
                batch.prefixes.add(src)
        elif isinstance(ev, FileMovedEvent):
            dst = _rel(vault, ev.dest_path)
            src_ok = src is not None and not is_ignored(src)
            dst_ok = dst is not None and not is_ignored(dst)
            if src_ok:
                batch.paths.add(src)
            if dst_ok:
                batch.paths.add(dst)
            if src_ok and dst_ok:
                batch.moves[dst] = batch.moves.pop(src, src)
        elif isinstance(ev, (*_CONTENT_EVENTS, FileDeletedEvent)) and src is not None and not is_ignored(src):
            batch.paths.add(src)
        # DirModifiedEvent, attrib, opened, closed-no-write: nothing a note's content depends on
    return batch


class _Handler(FileSystemEventHandler):
    """Forward every event to the debouncer. Filtering happens per burst in :func:`collect`, so
    the observer's dispatcher thread does no work (and folder events are not lost to
    ``ignore_directories``)."""

    def __init__(self, debouncer: EventDebouncer) -> None:
        self.debouncer = debouncer

    def dispatch(self, event: FileSystemEvent) -> None:
        self.debouncer.handle_event(event)


# --------------------------------------------------------------------------- half-written notes


def looks_incomplete(data: bytes) -> str | None:
    """Return why ``data`` looks like a note caught half-written, or None.

    Cheap text checks for what a writer in progress leaves behind: frontmatter opened but never
    closed, or a Nexus turn callout (``>[!nexus_…]``) with no ``<!-- UID: … -->`` line after it
    (Nexus writes each turn's UID last; ``formats.md`` §1.9). Both can also be a genuinely broken
    note, which is why the watcher only *defers* such files until they settle.
    """
    text = data.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    if text.startswith("---") and text[3:4] in ("\n", "\r", ""):
        rest = text.split("\n", 1)[1] if "\n" in text else ""
        if not any(line.rstrip() in ("---", "...") for line in rest.split("\n")):
            return "frontmatter is not closed"
    last_turn = max(text.rfind(">[!nexus_user]"), text.rfind(">[!nexus_agent]"))
    if last_turn >= 0:
        tail = text[last_turn:]
        if "<!-- UID:" not in tail:
            return "last turn has no UID line"
        uid_line = tail[tail.rfind("<!-- UID:") :].split("\n", 1)[0]
        if "-->" not in uid_line:
            return "UID line is cut short"
    return None


@dataclass
class _Deferred:
    size: int
    mtime_ns: int
    since: float
    reason: str


# --------------------------------------------------------------------------- batch → Changes


@dataclass
class Plan:
    """The result of checking a batch against disk and index: what to feed the pipeline."""

    created: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    deferred: dict[str, str] = field(default_factory=dict)
    """Half-written files held back this time, path → reason."""
    checked: set[str] = field(default_factory=set)
    """Every path compared with the index."""

    def __bool__(self) -> bool:
        return bool(self.created or self.modified or self.deleted or self.moved)


def _indexed_state(db: Any, paths: Iterable[str], prefixes: Iterable[str]) -> dict[str, tuple[int, int, str, float]]:
    """(size, mtime_ns, sha256, indexed_at) of the indexed notes among ``paths`` and under ``prefixes``."""
    out: dict[str, tuple[int, int, str, float]] = {}
    cols = "path, size, mtime_ns, sha256, indexed_at"
    paths = list(paths)
    for i in range(0, len(paths), 500):
        chunk = paths[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for path, *state in db.execute(f"SELECT {cols} FROM notes WHERE path IN ({marks})", chunk):
            out[path] = tuple(state)  # type: ignore[assignment]
    for prefix in prefixes:
        # '/' < '0' in byte order, so this range is exactly "everything under prefix/"
        for path, *state in db.execute(
            f"SELECT {cols} FROM notes WHERE path >= ? AND path < ?", (prefix + "/", prefix + "0")
        ):
            out[path] = tuple(state)  # type: ignore[assignment]
    return out


def _walk_notes(vault: Path, prefix: str, is_ignored: Callable[[str], bool]) -> Iterable[str]:
    top = vault / prefix
    if not top.is_dir():
        return
    for root, dirs, names in os.walk(top):
        reldir = Path(root).relative_to(vault).as_posix()
        dirs[:] = [d for d in dirs if not is_ignored_dir(f"{reldir}/{d}")]
        for name in names:
            rel = f"{reldir}/{name}"
            if not is_ignored(rel):
                yield rel


def plan(
    batch: Batch,
    vault: Path,
    db: Any,
    *,
    is_ignored: Callable[[str], bool],
    cut_ns: int,
    force: Iterable[str] = (),
) -> tuple[Plan, dict[str, tuple[int, int, str]]]:
    """Compare the paths a batch touched with the index: what was created, changed, deleted, moved.

    ``cut_ns`` is the wall-clock time the batch was taken: a file modified after it is still
    being written and is deferred, as is a file that :func:`looks_incomplete`, unless it is in
    ``force``. Returns the plan and, for deferred files, their (size, mtime_ns, reason).
    """
    force = set(force)
    candidates = set(batch.paths)
    for prefix in batch.prefixes:
        candidates.update(_walk_notes(vault, prefix, is_ignored))
    indexed = _indexed_state(db, candidates, batch.prefixes)
    candidates.update(indexed)

    result = Plan(checked=set(candidates))
    held: dict[str, tuple[int, int, str]] = {}
    for rel in sorted(candidates):
        try:
            st = os.stat(vault / rel)
            is_file = os.path.isfile(vault / rel)
        except OSError:
            st, is_file = None, False
        if not is_file or st is None:
            if rel in indexed:
                result.deleted.append(rel)
            continue
        old = indexed.get(rel)
        # Unchanged size and mtime means unchanged content, unless the file was written so soon
        # after it was indexed that an edit could hide in the same mtime tick ("racy", as in
        # ``scan``): then the pipeline compares sha256 and skips it if nothing changed.
        if old is not None and old[:2] == (st.st_size, st.st_mtime_ns) and (
            st.st_mtime_ns < (old[3] - RACY_SECONDS) * 1e9
        ):
            continue
        reason = None
        if rel in force:
            pass
        elif st.st_mtime_ns > cut_ns:
            reason = "changed while the batch was being prepared"
        else:
            try:
                reason = looks_incomplete(files.read_bytes(vault / rel))
            except OSError:
                reason = None  # let the pipeline report the read error, naming the path
        if reason:
            result.deferred[rel] = reason
            held[rel] = (st.st_size, st.st_mtime_ns, reason)
            continue
        (result.modified if rel in indexed else result.created).append(rel)

    # Pair reported renames: the source vanished from the index and the target is new.
    created, deleted = set(result.created), set(result.deleted)
    for dst, src in batch.moves.items():
        if dst in created and src in deleted:
            result.moved.append((src, dst))
            created.discard(dst)
            deleted.discard(src)
    # Pair the rest by content, as ``scan`` does: a folder moved while events were lost, or moved
    # in from a place the observer reported only one side of, keeps its notes' rows and turns.
    by_sha: dict[str, list[str]] = {}
    for rel in sorted(deleted):
        by_sha.setdefault(indexed[rel][2], []).append(rel)
    if by_sha:
        for rel in sorted(created):
            try:
                sha = sha256_file(vault / rel)
            except OSError:
                continue
            if by_sha.get(sha):
                src = by_sha[sha].pop(0)
                result.moved.append((src, rel))
                created.discard(rel)
                deleted.discard(src)
    result.created = [p for p in result.created if p in created]
    result.deleted = [p for p in result.deleted if p in deleted]
    return result, held


# --------------------------------------------------------------------------- logging


@dataclass
class BatchStats:
    """What one applied batch did, for the log line and for tests."""

    created: int = 0
    modified: int = 0
    deleted: int = 0
    moved: int = 0
    failed: int = 0
    turns: int = 0
    """Turns added or changed."""
    passages_embedded: int = 0
    """Passages sent to the model (moved or restored text reuses its vectors)."""
    deferred: int = 0
    pending: int = 0
    """Passages waiting to be embedded after the batch (a catch-up's backlog, embedded between bursts)."""
    seconds: float = 0.0
    embed_seconds: float = 0.0
    kind: str = "batch"
    """``catch-up``, ``batch`` or ``reconcile``."""
    paths: list[str] = field(default_factory=list)
    """Every path the batch touched (tests and ``--json-log`` consumers)."""

    @property
    def changed(self) -> bool:
        """Whether the batch changed the index at all."""
        return bool(self.created or self.modified or self.deleted or self.moved or self.failed)

    def human(self) -> str:
        parts = []
        if self.created:
            parts.append(f"+{self.created} notes")
        if self.modified:
            parts.append(f"~{self.modified} changed")
        if self.deleted:
            parts.append(f"-{self.deleted} removed")
        if self.moved:
            parts.append(f"{self.moved} moved")
        if not parts:
            parts.append("no note changes")
        parts.append(f"{self.turns} turns, {self.passages_embedded} passages embedded")
        if self.pending:
            parts.append(f"{self.pending} to embed in the background")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.deferred:
            parts.append(f"{self.deferred} half-written, retrying")
        prefix = "" if self.kind == "batch" else f"{self.kind}: "
        return f"{prefix}{', '.join(parts)}, {self.seconds:.1f} s"

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "modified": self.modified,
            "deleted": self.deleted,
            "moved": self.moved,
            "failed": self.failed,
            "turns": self.turns,
            "passages_embedded": self.passages_embedded,
            "deferred": self.deferred,
            "pending": self.pending,
            "seconds": round(self.seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3),
        }

    @classmethod
    def from_report(cls, report: Any, changes: Any, kind: str, deferred: int) -> BatchStats:
        """Combine the pipeline's ``Report`` with the ``Changes`` it was given."""
        failed = {f.path for f in report.failures}
        created = sum(1 for p in changes.created if p not in failed)
        return cls(
            created=created,
            modified=max(0, report.notes_changed - created),
            deleted=report.notes_removed,
            moved=report.notes_moved,
            failed=report.notes_failed,
            turns=report.turns_added + report.turns_updated,
            passages_embedded=report.passages_embedded,
            deferred=deferred,
            pending=report.passages_pending,
            seconds=report.seconds,
            embed_seconds=report.embed_seconds,
            kind=kind,
            paths=sorted({*changes.created, *changes.modified, *changes.deleted, *(p for m in changes.moved for p in m)}),
        )


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``event``, ``message`` and the record's ``data``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        out.update(getattr(record, "data", {}) or {})
        return json.dumps(out, ensure_ascii=False)


STOPPED_MID_BATCH = "stopped; the batch in progress was rolled back and will be redone at the next start"


def stop_line(*, json_log: bool) -> bytes:
    """The log line of a stop that does not wait for the work in progress (the CLI's grace
    timer writes it with ``os.write``: logging's locks may be held by the thread it abandons)."""
    now = time.time()
    if json_log:
        data = {"ts": round(now, 3), "level": "info", "event": "stop", "message": STOPPED_MID_BATCH, "forced": True}
        text = json.dumps(data, ensure_ascii=False)
    else:
        text = f"{time.strftime('%H:%M:%S', time.localtime(now))} {STOPPED_MID_BATCH}"
    return (text + "\n").encode("utf-8")


def configure_logging(*, json_log: bool, stream: Any = None) -> logging.Handler:
    """Send the watcher's log to ``stream`` (stderr), as human lines or JSON lines."""
    handler = logging.StreamHandler(stream)
    if json_log:
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


def _emit(event: str, message: str, level: int = logging.INFO, **data: Any) -> None:
    log.log(level, message, extra={"event": event, "data": data})


# --------------------------------------------------------------------------- the event side


class Watcher:
    """Observe a vault and hand out :class:`Batch` es: debounced bursts, retries of half-written
    files, and periodic reconciliation. Holds no index connection, so the caller's thread does
    all the writing.

    Use as a context manager (it starts and joins its threads)::

        with Watcher(vault) as w:
            while not stop.is_set():
                batch = w.next_batch(stop)
    """

    def __init__(
        self,
        vault: Path,
        *,
        debounce: float = DEFAULT_DEBOUNCE,
        reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
        settle: float = DEFAULT_SETTLE,
        is_ignored: Callable[[str], bool] | None = None,
        observer_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.vault = Path(vault).resolve()
        self.debounce = debounce
        self.reconcile_interval = reconcile_interval
        self.settle = settle
        self.is_ignored = is_ignored or is_ignored_note
        self._observer_factory = observer_factory
        self._clock = clock
        self._bursts: queue.Queue[list[FileSystemEvent]] = queue.Queue()
        self._deferred: dict[str, _Deferred] = {}
        self._next_reconcile = clock() + reconcile_interval if reconcile_interval > 0 else float("inf")
        self._next_retry = float("inf")
        self._observer: Any = None
        self._debouncer: EventDebouncer | None = None
        self.drop_events = threading.Event()
        """While set, observed events are discarded (tests simulate a watchdog overflow with it)."""

    # -- lifecycle

    def start(self) -> None:
        # watchdog 7's inotify backend warns when a folder moved out of the vault comes back (the
        # kernel hands out the same watch again) and then does the right thing; under
        # ``-W error`` the warning would kill its emitter thread, so it is silenced here.
        warnings.filterwarnings(
            "ignore", message=r"Callback with id .* already exists", category=RuntimeWarning
        )
        if self._observer_factory is None:
            from watchdog.observers import Observer

            factory: Callable[[], Any] = Observer
        else:
            factory = self._observer_factory
        self._debouncer = EventDebouncer(self.debounce, self._on_burst)
        self._debouncer.daemon = True
        self._debouncer.start()
        native = None
        try:
            native = factory()
            self._observer = self._start_observer(native)
        except OSError as exc:
            if native is not None:
                with contextlib.suppress(Exception):
                    native.stop()  # releases its emitters and inotify reader thread
            # e.g. inotify's per-user watch limit (ENOSPC) on a huge vault: polling still works
            from watchdog.observers.polling import PollingObserver

            _emit(
                "warning",
                f"native file watching failed ({exc.strerror or exc}); polling the vault instead "
                "(raise fs.inotify.max_user_watches to avoid this)",
                logging.WARNING,
            )
            self._observer = self._start_observer(PollingObserver())

    def _start_observer(self, observer: Any) -> Any:
        observer.schedule(_Handler(self._debouncer), str(self.vault), recursive=True)
        observer.daemon = True
        observer.start()
        return observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        if self._debouncer is not None:
            self._debouncer.stop()
            self._debouncer.join()
            self._debouncer = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_burst(self, events: list[FileSystemEvent]) -> None:
        # Runs on the debouncer thread: only hand over, never touch the index here.
        if not self.drop_events.is_set():
            self._bursts.put(events)

    # -- batches

    @property
    def deferred(self) -> dict[str, str]:
        """Files held back as half-written, path → reason."""
        return {p: d.reason for p, d in self._deferred.items()}

    def request_reconcile(self) -> None:
        """Make the next :meth:`next_batch` a full reconciliation scan."""
        self._next_reconcile = self._clock()

    def next_batch(self, stop: threading.Event, poll: float = 0.2) -> tuple[Batch, set[str]] | None:
        """Wait for work; return ``(batch, force)`` or None if ``stop`` was set or nothing is due.

        ``force`` names deferred files that have not changed for ``settle`` seconds: index them
        as they are. Waits at most ``poll`` seconds so a signal handler's ``stop`` is seen soon.
        """
        now = self._clock()
        due = min(self._next_reconcile, self._next_retry)
        timeout = max(0.0, min(poll, due - now))
        batch = Batch()
        with contextlib.suppress(queue.Empty):
            batch.merge(collect(self._bursts.get(timeout=timeout), self.vault, self.is_ignored))
        while True:  # everything already waiting joins this batch
            try:
                batch.merge(collect(self._bursts.get_nowait(), self.vault, self.is_ignored))
            except queue.Empty:
                break
        if stop.is_set():
            return None
        now = self._clock()
        force: set[str] = set()
        if now >= self._next_retry and self._deferred:
            for rel, d in self._deferred.items():
                batch.paths.add(rel)
                if now - d.since >= self.settle and _same_state(self.vault / rel, d):
                    force.add(rel)
        if now >= self._next_reconcile:
            batch.rescan = True
            self._next_reconcile = now + self.reconcile_interval if self.reconcile_interval > 0 else float("inf")
        if not batch:
            if now >= self._next_retry:
                self._next_retry = float("inf")
            return None
        return batch, force

    def record_deferred(self, held: dict[str, tuple[int, int, str]], checked: Iterable[str]) -> list[str]:
        """Update the half-written set after a batch: ``held`` were deferred, the rest of
        ``checked`` were handled. Return the paths newly deferred (to log them once, not at
        every retry)."""
        now = self._clock()
        for rel in checked:
            if rel not in held:
                self._deferred.pop(rel, None)
        new = []
        for rel, (size, mtime_ns, reason) in held.items():
            old = self._deferred.get(rel)
            if old is None or (old.size, old.mtime_ns) != (size, mtime_ns):
                self._deferred[rel] = _Deferred(size, mtime_ns, now, reason)
                if old is None:
                    new.append(rel)
        self._next_retry = now + max(self.debounce, 0.05) if self._deferred else float("inf")
        return sorted(new)


def _same_state(path: Path, d: _Deferred) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return True  # gone: the plan will see a deletion
    return (st.st_size, st.st_mtime_ns) == (d.size, d.mtime_ns)


def lock_holder(index_dir: Path) -> str | None:
    """Describe who writes the index now (``pid 4242 (tropegraph watch), since …``), or None."""
    from indexer.lock import holder

    info = holder(Path(index_dir))
    if info is None:
        return None
    who = f"pid {info.pid}" if info.pid else "another process"
    if info.command:
        who += f" ({info.command})"
    if info.started:
        who += f", since {info.started}"
    return who


# --------------------------------------------------------------------------- the loop


def hold_incomplete(changes: Any, vault: Path, *, cut_ns: int, force: Iterable[str] = ()) -> dict[str, tuple[int, int, str]]:
    """Take half-written files out of a ``scan`` result (the catch-up or a reconciliation), as
    :func:`plan` does for event batches; return them as (size, mtime_ns, reason)."""
    force = set(force)
    held: dict[str, tuple[int, int, str]] = {}
    for rel in [*changes.created, *changes.modified]:
        if rel in force:
            continue
        try:
            st = os.stat(vault / rel)
            reason = "changed while the batch was being prepared" if st.st_mtime_ns > cut_ns else (
                looks_incomplete(files.read_bytes(vault / rel))
            )
        except OSError:
            continue
        if reason:
            held[rel] = (st.st_size, st.st_mtime_ns, reason)
    if held:
        changes.created = [p for p in changes.created if p not in held]
        changes.modified = [p for p in changes.modified if p not in held]
    return held


def run_watch(
    vault: Path,
    index_dir: Path,
    *,
    stop: threading.Event,
    debounce: float = DEFAULT_DEBOUNCE,
    reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
    settle: float = DEFAULT_SETTLE,
    embedder: Any = None,
    ready: threading.Event | None = None,
    on_batch: Callable[[BatchStats], None] | None = None,
    observer_factory: Callable[[], Any] | None = None,
    save_interval: float = SAVE_VECTORS_EVERY,
) -> None:
    """Catch up with the vault, then index every debounced burst until ``stop`` is set.

    Raises ``IndexLocked`` at once if another process writes the index. When ``stop`` is set
    during a batch, the batch is abandoned (its open transaction rolls back; the next start finds
    the same changes again) and the function returns normally. ``ready`` is set once the
    catch-up is done and the observer runs. The FAISS cache file is saved after catch-up and
    reconciliation, at most every ``save_interval`` seconds after batches, and on stopping.
    """
    from indexer import hooks
    from indexer.embed import embedder_for_index
    from indexer.pipeline import Changes, Pipeline, pending_embeddings, prepare_model, scan
    from indexer.report import Report
    from indexer.store import open_index

    hooks.load_default_hooks()  # derived data (metaphors) kept up to date, as by `tropegraph index`
    vault = Path(vault).resolve()
    index = open_index(index_dir, create=True, command=f"tropegraph watch --vault {vault}")
    try:
        if embedder is None:
            embedder = embedder_for_index(index)
        prepare_model(index, embedder)  # ModelMismatch if the index holds another model's vectors
        # small embedding windows: the backlog is embedded between bursts, one window at a time
        pipeline = Pipeline(index, vault, embedder, embed_window=max(8, 2 * embedder.batch_size))
        saved_at = time.monotonic()
        backlog = _Backlog()
        from indexer import pipeline as pipeline_module
        from indexer.lexicon import update_lexicon

        # the vault's words for search across languages: embedded between bursts, a slice at a time,
        # once the passage backlog is done; again at most every LEXICON_EVERY s after new notes
        words = _Lexicon(enabled=bool(pipeline_module.LEXICON and embedder.multilingual))

        def embed_words() -> None:
            t = time.monotonic()
            n = update_lexicon(index.db, embedder.embed_terms, pipeline.model, limit=LEXICON_SLICE)
            words.done += n
            words.seconds += time.monotonic() - t
            if n < LEXICON_SLICE:  # complete: wait for new notes (and LEXICON_EVERY) before looking again
                if words.done:
                    _emit("words", f"embedded {words.done} words for search across languages ({words.seconds:.1f} s)",
                          words=words.done, seconds=round(words.seconds, 3))
                words.complete()

        def save_vectors(*, due: bool = False) -> None:
            nonlocal saved_at
            if due and (not index.vectors_unsaved or time.monotonic() - saved_at < save_interval):
                return
            t = time.monotonic()
            index.save_vectors()
            saved_at = time.monotonic()
            log.debug("saved the vector cache in %.2f s", saved_at - t)

        def progress(done: int, total: int) -> None:
            if stop.is_set():
                raise StopRequested

        def apply(changes: Any, kind: str, deferred: int) -> None:
            if changes.total >= LONG_BATCH:
                _emit("applying", f"indexing {changes.total} changed notes…", notes=changes.total)
            # Vectors nobody uses are collected at reconciliation, not per batch, so a note that is
            # deleted in one burst and restored in the next (undo, a sync client) is not re-embedded.
            # A burst's own passages are embedded at once; a catch-up's or reconciliation's are
            # left to the backlog, embedded between bursts (keyword search has them already).
            report = pipeline.apply(
                changes, progress=progress, gc=kind != "batch", save_vectors=False,
                embed="new" if kind == "batch" else "none", embed_progress=progress,
            )
            backlog.update(report.passages_pending)
            if changes.total:
                words.stale()  # new notes may bring new words (embedded when the watcher is idle)
            if kind != "batch":
                save_vectors()
            stats = BatchStats.from_report(report, changes, kind, deferred)
            # A touched-but-identical file (saved without edits, a racy re-check) is not news.
            if kind != "batch" or stats.changed:
                _emit(kind, stats.human(), **stats.to_dict())
            for failure in report.failures:
                _emit("failed", str(failure), logging.WARNING, path=failure.path)
            for warning in report.warnings:
                _emit("warning", warning, logging.WARNING)
            if on_batch is not None:
                on_batch(stats)

        def rescan(kind: str, force: set[str]) -> None:
            changes = scan(vault, index)
            held = hold_incomplete(changes, vault, cut_ns=time.time_ns(), force=force)
            _log_deferred(held, watcher.record_deferred(held, [*changes.created, *changes.modified, *held]))
            apply(changes, kind, len(watcher.deferred))

        def embed_slice() -> None:
            """Embed about ``EMBED_SLICE`` seconds of the backlog (committed), logging progress."""
            report = Report(model=pipeline.model)
            pipeline.embed_pending(report, progress, max_seconds=EMBED_SLICE)
            left = pending_embeddings(index.db)
            backlog.done += report.passages_embedded
            backlog.seconds += report.embed_seconds
            if left == 0:
                save_vectors()  # like a catch-up: the file on disk holds the whole vault again
                _emit(
                    "embedded",
                    f"embedded {backlog.done} passages in the background ({backlog.seconds:.1f} s); "
                    "every passage is searchable by meaning",
                    passages=backlog.done, seconds=round(backlog.seconds, 3),
                )
                backlog.reset()
            elif time.monotonic() - backlog.logged_at >= EMBED_LOG_EVERY:
                _emit(
                    "embedding",
                    f"embedding in the background: {backlog.done}/{backlog.done + left} passages"
                    + (f", about {_duration(backlog.eta(left))} left" if backlog.done else ""),
                    done=backlog.done, pending=left,
                )
                backlog.logged_at = time.monotonic()
                backlog.pending = left
            else:
                backlog.pending = left

        watcher = Watcher(
            vault,
            debounce=debounce,
            reconcile_interval=reconcile_interval,
            settle=settle,
            observer_factory=observer_factory,
        )
        try:
            # The observer starts first so that nothing written during the catch-up is missed.
            with watcher:
                _emit("start", f"watching {vault} (index {index.dir})", vault=str(vault), index_dir=str(index.dir))
                rescan("catch-up", set())
                if ready is not None:
                    ready.set()
                while not stop.is_set():
                    got = watcher.next_batch(stop, poll=0.0 if backlog.pending or words.ready() else 0.2)
                    if got is None:
                        if backlog.pending:
                            embed_slice()
                        elif words.ready():
                            embed_words()
                        save_vectors(due=True)
                        continue
                    batch, force = got
                    if batch.rescan:
                        rescan("reconcile", force)
                        continue
                    result, held = plan(
                        batch, vault, index.db, is_ignored=watcher.is_ignored, cut_ns=time.time_ns(), force=force
                    )
                    _log_deferred(held, watcher.record_deferred(held, result.checked))
                    if result:
                        changes = Changes(
                            created=result.created, modified=result.modified,
                            deleted=result.deleted, moved=result.moved,
                        )
                        apply(changes, "batch", len(watcher.deferred))
                    save_vectors(due=True)
        except StopRequested:
            _emit("stop", STOPPED_MID_BATCH)
        else:
            _emit("stop", "stopped")
    finally:
        index.close()


@dataclass
class _Lexicon:
    """Whether the watcher owes the lexicon (``indexer.lexicon``) an idle slice, and its progress."""

    enabled: bool
    """Only a multilingual model gets a lexicon."""
    due: bool = True
    not_before: float = 0.0
    done: int = 0
    seconds: float = 0.0

    def ready(self) -> bool:
        return self.enabled and self.due and time.monotonic() >= self.not_before

    def stale(self) -> None:
        self.due = True

    def complete(self) -> None:
        self.due, self.not_before = False, time.monotonic() + LEXICON_EVERY
        self.done, self.seconds = 0, 0.0


@dataclass
class _Backlog:
    """Passages the watcher still has to embed between bursts, and how it is getting on."""

    pending: int = 0
    done: int = 0
    seconds: float = 0.0
    logged_at: float = field(default_factory=time.monotonic)

    def update(self, pending: int) -> None:
        if pending and not self.pending:
            self.logged_at = time.monotonic()
        self.pending = pending

    def eta(self, left: int) -> float:
        return left * self.seconds / self.done if self.done else 0.0

    def reset(self) -> None:
        self.pending = self.done = 0
        self.seconds = 0.0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _log_deferred(held: dict[str, tuple[int, int, str]], new: list[str]) -> None:
    for rel in new:
        reason = held[rel][2]
        _emit("deferred", f"{rel}: looks half-written ({reason}); will retry", path=rel, reason=reason)
