"""Finding 5: every OS/SQLite/FAISS failure a user can cause is one ``Error:`` line naming the
file and the fix, exit code 1, data kept — not a traceback.

Simulated deterministically: a full disk by a file-size limit (``RLIMIT_FSIZE``, SIGXFSZ
ignored, so writes fail with EFBIG), a read-only folder and denied permissions by ``chmod`` —
as root (tests run as root here) the subprocess first drops CAP_DAC_OVERRIDE/READ_SEARCH/FOWNER
from its capability bounding set so permissions apply to it — a damaged database by
overwriting the pages ``dbstat`` says hold a table, and a deleted write-ahead log under a live
``watch``.
"""
from __future__ import annotations

import ctypes
import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pytest
from index_helpers import check_consistent

from indexer.errors import explain

pytestmark = pytest.mark.slow  # subprocesses

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "interfaces" / "demo_vault"
ENV = {**os.environ, "TROPEGRAPH_ENGINE": "fake"}
ENV.pop("TROPEGRAPH_RAISE_ERRORS", None)


def tg(*args: str, preexec: Callable[[], None] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interfaces", *args], check=False, capture_output=True, text=True,
                          env=ENV, preexec_fn=preexec, timeout=timeout)


def error_line(res: subprocess.CompletedProcess) -> str:
    """The run failed with exit 1 and exactly one ``Error:`` line, no traceback; return it."""
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.stderr
    return errors[0]


def _drop_dac() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def unprivileged() -> Callable[[], None] | None:
    """A ``preexec_fn`` under which file permissions apply (None when they already do). Never
    skips silently: if permissions cannot be made to apply, the test fails saying why."""
    if os.geteuid() != 0:
        return None
    probe = subprocess.run([sys.executable, "-c", "open('/proc/1/environ', 'rb').read(1)"],
                           preexec_fn=_drop_dac, capture_output=True, check=False)
    if probe.returncode == 0 and os.path.exists("/proc/1/environ"):
        pytest.fail("cannot make file permissions apply to a root subprocess (CAP_SETPCAP missing?)")
    return _drop_dac


def no_bigger_than(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("built")
    shutil.copytree(DEMO, base / "vault")
    res = tg("index", "--vault", str(base / "vault"), "--index-dir", str(base / "index"))
    assert res.returncode == 0, res.stderr
    return base


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A private copy of the indexed demo vault: (vault, index_dir, --vault/--index-dir args)."""
    shutil.copytree(built, tmp_path / "w")
    vault, index_dir = tmp_path / "w" / "vault", tmp_path / "w" / "index"
    os.chmod(tmp_path, 0o755)
    return vault, index_dir, ["--vault", str(vault), "--index-dir", str(index_dir)]


def count(index_dir: Path, sql: str) -> int:
    db = sqlite3.connect(f"{(index_dir / 'index.db').as_uri()}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


# --------------------------------------------------------------------------- disk full


def test_disk_full_is_one_error_line_and_keeps_what_was_indexed(copy: tuple) -> None:
    vault, index_dir, base = copy
    notes_before = count(index_dir, "SELECT count(*) FROM notes")
    rng = random.Random(5)
    for i in range(300):
        words = " ".join(f"слово{rng.randrange(10**6)}" for _ in range(60))
        (vault / f"new{i:03}.md").write_text(f"# New {i}\n\n{words}.\n", encoding="utf-8")
    limit = (index_dir / "index.db").stat().st_size + 150_000
    res = tg("index", *base, preexec=no_bigger_than(limit))
    db = index_dir / "index.db"
    assert re.fullmatch(
        rf"Error: cannot write {re.escape(str(db))} \((database or disk is full|disk I/O error)\): the disk is "
        r"full or failing; free some space, then run the command again \(everything indexed before is kept\)",
        error_line(res),
    ), res.stderr
    assert count(index_dir, "SELECT count(*) FROM notes") >= notes_before  # nothing lost
    res = tg("index", *base, "--json")  # space again: it finishes the job
    assert res.returncode == 0, res.stderr
    assert count(index_dir, "SELECT count(*) FROM notes") == notes_before + 300
    check_consistent(index_dir)


def test_a_full_disk_while_saving_the_vector_cache_names_it(tmp_path: Path) -> None:
    """FAISS' own errors (a RuntimeError quoting C++) are explained too."""
    index = faiss.IndexFlatIP(8)
    index.add(np.random.default_rng(1).random((2000, 8), dtype=np.float32))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, hard))
    try:
        with pytest.raises(RuntimeError) as exc:
            faiss.write_index(index, str(tmp_path / "vectors.faiss"))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert str(explain(exc.value, tmp_path)) == (
        f"cannot write {tmp_path / 'vectors.faiss'} (write error in {tmp_path / 'vectors.faiss'}: 9955 != 64000 "
        "(File too large)); free some space, then run the command again (everything indexed before is kept)"
    )


# --------------------------------------------------------------------------- permissions


def test_read_only_index_folder(copy: tuple) -> None:
    _vault, index_dir, base = copy
    os.chmod(index_dir, 0o555)
    try:
        res = tg("index", *base, preexec=unprivileged())
        assert error_line(res) == (
            f"Error: cannot write the index folder {index_dir} (Permission denied); make it writable "
            f"(chmod u+w {index_dir}) or choose another with --index-dir (the index is unchanged)"
        )
        res = tg("status", *base, "--json", preexec=unprivileged())  # reading still works
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["counts"]["notes"] == count(index_dir, "SELECT count(*) FROM notes")
        res = tg("search", "карта смысла", *base, "--mode", "keyword", "--json", preexec=unprivileged())
        assert res.returncode == 0 and json.loads(res.stdout)["results"], res.stderr
    finally:
        os.chmod(index_dir, 0o755)


def test_permission_denied_on_the_database(copy: tuple) -> None:
    _vault, index_dir, base = copy
    db = index_dir / "index.db"
    os.chmod(db, 0)
    try:
        assert error_line(tg("index", *base, preexec=unprivileged())) == (
            f"Error: cannot write {db} (Permission denied); give yourself access (chmod u+rw {db}) and run the "
            "command again (the index is unchanged)"
        )
        assert error_line(tg("status", *base, preexec=unprivileged())) == (
            f"Error: cannot read {db} (Permission denied); give yourself access (chmod u+r {db}) and run the "
            "command again (the index is unchanged)"
        )
    finally:
        os.chmod(db, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    assert tg("status", *base).returncode == 0


def test_report_folder_not_writable(copy: tuple) -> None:
    vault, _index_dir, base = copy
    (vault / "Tropegraph").mkdir()
    os.chmod(vault / "Tropegraph", 0o555)
    try:
        line = error_line(tg("report", *base, "--no-drift", "--top", "2", preexec=unprivileged()))
    finally:
        os.chmod(vault / "Tropegraph", 0o755)
    assert line == (
        f"Error: cannot access {vault / 'Tropegraph'} (Permission denied); check its permissions (or choose "
        "another path)"
    )


# --------------------------------------------------------------------------- a damaged database


def garble(db: Path, table: str, *, pages: int | None = None, keep_header: int = 0) -> int:
    """Overwrite leaf pages of ``table`` (the first ``pages`` of them, or all) with noise; return
    how many rows they held."""
    con = sqlite3.connect(db)
    size = con.execute("PRAGMA page_size").fetchone()[0]
    leaves = con.execute(
        "SELECT pageno, ncell FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", (table,)
    ).fetchall()
    con.close()
    leaves = leaves[1 : 1 + pages] if pages else leaves
    data = bytearray(db.read_bytes())
    rng = random.Random(3)
    for pageno, _ in leaves:
        start = (pageno - 1) * size + keep_header
        data[start : (pageno * size)] = rng.randbytes(size - keep_header)
    db.write_bytes(bytes(data))
    return sum(n for _, n in leaves)


def semantic_top(base: list[str]) -> list[list[str]]:
    out = []
    for q in ("карта смысла", "мост между мирами", "язык токенов"):
        res = tg("search", q, *base, "--mode", "semantic", "--json", "-k", "5")
        assert res.returncode == 0, res.stderr
        out.append([r["uid"] for r in json.loads(res.stdout)["results"]])
    return out


def test_damaged_database_says_what_can_be_salvaged_and_repair_keeps_it(copy: tuple) -> None:
    _vault, index_dir, base = copy
    db = index_dir / "index.db"
    vectors = count(index_dir, "SELECT count(*) FROM vectors")
    before = semantic_top(base)
    garble(db, "turns")
    expected = (
        f"Error: the index database {db} is damaged (database disk image is malformed); all its {vectors} "
        "vectors can be salvaged: run `tropegraph index --repair` to rebuild it from the vault keeping them "
        "(the damaged file is kept beside it)"
    )
    # (`metaphors` lists from the metaphor tables alone, which this damage does not touch: commands
    # meet damage only where they read, see Index.check_integrity)
    for command in (["status"], ["search", "карта смысла", "--mode", "keyword"], ["timeline", "карта смысла"]):
        assert error_line(tg(*command, *base)) == expected, command
    line = error_line(tg("index", *base, "--full"))
    assert line.startswith(f"Error: the index database {db} is damaged (") and line.endswith(
        f"all its {vectors} vectors can be salvaged: run `tropegraph index --repair` to rebuild it from the vault "
        "keeping them (the damaged file is kept beside it)"
    )

    res = tg("index", "--repair", *base, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["repair"]["vectors_kept"] == vectors and out["passages_embedded"] == 0
    assert Path(out["repair"]["damaged_copy"]).exists()  # the damaged file is kept
    check_consistent(index_dir)
    assert semantic_top(base) == before
    assert tg("status", *base).returncode == 0


def test_repair_keeps_every_readable_vector_and_embeds_only_the_lost(copy: tuple) -> None:
    _vault, index_dir, base = copy
    db = index_dir / "index.db"
    vectors = count(index_dir, "SELECT count(*) FROM vectors")
    before = semantic_top(base)
    lost = garble(db, "vectors", pages=1, keep_header=200)  # cells of one leaf page, header intact
    res = tg("index", "--repair", *base, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    kept = out["repair"]["vectors_kept"]
    assert vectors - lost <= kept < vectors
    assert out["passages_embedded"] == vectors - kept  # only the lost ones are embedded again
    check_consistent(index_dir)
    assert semantic_top(base) == before  # the fake engine is deterministic: same vectors again


# --------------------------------------------------------------------------- the write-ahead log


def test_wal_deleted_under_a_live_writer(copy: tuple) -> None:
    vault, index_dir, base = copy
    cmd = [sys.executable, "-m", "interfaces", "watch", *base, "--json-log"]
    with subprocess.Popen(cmd, env=ENV, stderr=subprocess.PIPE, text=True) as watch:
        try:
            _wait(watch, '"event": "catch-up"')
            (vault / "new.md").write_text("# New\n\nНовая заметка про сад памяти.\n", encoding="utf-8")
            _wait(watch, '"event": "batch"')
            (index_dir / "index.db-wal").unlink()
            assert error_line(tg("status", *base)) == (
                f"Error: cannot read {index_dir / 'index.db'} (disk I/O error): its write-ahead log "
                f"{index_dir / 'index.db-wal'} was deleted while pid {watch.pid} (tropegraph watch --vault {vault}) "
                "writes the index; stop that process (it writes its work back when it exits) and run the command "
                "again"
            )
        finally:
            watch.send_signal(signal.SIGTERM)
            watch.wait(timeout=30)
    res = tg("status", *base, "--json")
    assert res.returncode == 0, res.stderr
    assert count(index_dir, "SELECT count(*) FROM notes WHERE path = 'new.md'") == 1  # data kept


def _wait(proc: subprocess.Popen, needle: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"{needle} not seen: {seen}")
