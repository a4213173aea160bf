"""Finding 1 (and part of 6): FIFOs, sockets, devices and symlinks leading out of the vault.

A FIFO named ``*.md`` or a symlink to ``/dev/zero`` hung ``index`` forever and ``watch`` at its
catch-up, deaf to SIGTERM and holding the writer lock. Now only regular files are read (opened
non-blocking, checked with fstat, size-capped); the rest is skipped with a warning naming the
path, and ``watch`` exits within a second of SIGTERM whatever it is doing.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.lock import holder
from indexer.store import open_index

pytestmark = pytest.mark.slow  # subprocesses

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "TROPEGRAPH_ENGINE": "fake"}
NOTE = "# {0}\n\nСад памяти хранит карту смысла {0}.\n"


def special_vault(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A vault with two notes, a followed folder link, and every kind of file that is not a note;
    returns it and {path: words its warning must contain}."""
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "a.md").write_text(NOTE.format("a"), encoding="utf-8")
    (vault / "sub").mkdir()
    (vault / "sub" / "b.md").write_text(NOTE.format("b"), encoding="utf-8")
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "c.md").write_text(NOTE.format("c"), encoding="utf-8")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "secret.md").write_text("secret outside the vault\n", encoding="utf-8")
    (vault / "linked").symlink_to(outside, target_is_directory=True)  # followed, like Obsidian
    (outside / "deep" / "back").symlink_to(outside, target_is_directory=True)  # a loop
    (vault / "again").symlink_to(vault / "sub", target_is_directory=True)  # already in the vault
    os.mkfifo(vault / "pipe.md")
    (vault / "zero.md").symlink_to("/dev/zero")
    (vault / "sub" / "random.md").symlink_to("/dev/urandom")
    (vault / "passwd.md").symlink_to("/etc/passwd")
    (vault / "secret.md").symlink_to(tmp_path / "private" / "secret.md")
    (vault / "same.md").symlink_to(vault / "a.md")  # a link inside the vault is fine
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(vault / "sock.md"))
    sock.close()
    expected = {
        "pipe.md": "not a regular file but a FIFO (named pipe)",
        "zero.md": "not a regular file but a character device",
        "sub/random.md": "not a regular file but a character device",
        "sock.md": "not a regular file but a socket",
        "passwd.md": "a symbolic link to /etc/passwd, outside the vault",
        "secret.md": f"a symbolic link to {(tmp_path / 'private' / 'secret.md').resolve()}, outside the vault",
        "again": "folder link skipped",
        "linked/deep/back": "folder link skipped",
    }
    return vault, expected


def test_special_files_are_skipped_with_a_warning_in_seconds(tmp_path: Path) -> None:
    vault, expected = special_vault(tmp_path)
    index_dir = tmp_path / "index"
    t = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "interfaces", "index", "--vault", str(vault), "--index-dir", str(index_dir), "--json"],
        check=False, capture_output=True, text=True, env=ENV, timeout=120,
    )
    seconds = time.monotonic() - t
    assert res.returncode == 0, res.stderr
    print(f"special-file vault indexed in {seconds:.1f} s")
    report = json.loads(res.stdout)
    for path, words in expected.items():
        hits = [w for w in report["warnings"] if w.startswith(f"{path}: ") and words in w]
        assert len(hits) == 1, (path, report["warnings"])
    with open_index(index_dir, readonly=True) as idx:
        paths = {r[0] for r in idx.db.execute("SELECT path FROM notes")}
        texts = " ".join(r[0] for r in idx.db.execute("SELECT text FROM turns"))
    assert paths == {"a.md", "same.md", "sub/b.md", "linked/deep/c.md"}
    assert "root:" not in texts and "secret" not in texts

    # the same vault again: nothing re-read, the same warnings, no failure
    res = subprocess.run(
        [sys.executable, "-m", "interfaces", "index", "--vault", str(vault), "--index-dir", str(index_dir), "--json"],
        check=False, capture_output=True, text=True, env=ENV, timeout=120,
    )
    again = json.loads(res.stdout)
    assert again["notes_changed"] == 0 and again["notes_failed"] == 0


def _wait_for_line(stream, needle: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not seen: {lines}")


def test_watch_over_special_files_catches_up_and_stops_on_sigterm(tmp_path: Path) -> None:
    vault, _ = special_vault(tmp_path)
    index_dir = tmp_path / "index"
    cmd = [sys.executable, "-m", "interfaces", "watch", "--vault", str(vault), "--index-dir", str(index_dir),
           "--json-log"]
    with subprocess.Popen(cmd, env=ENV, stderr=subprocess.PIPE, text=True) as proc:
        try:
            lines = _wait_for_line(proc.stderr, '"event": "catch-up"', 120)
            catch_up = json.loads(lines[-1])
            assert catch_up["created"] == 4
            t = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            print(f"idle watcher stopped {time.monotonic() - t:.2f} s after SIGTERM")
        finally:
            if proc.poll() is None:
                proc.kill()
    assert holder(index_dir) is None


def test_watch_stuck_in_a_blocking_read_exits_within_a_second_of_sigterm(tmp_path: Path) -> None:
    vault, _ = special_vault(tmp_path)
    index_dir = tmp_path / "index"
    fifo, marker = tmp_path / "hook.fifo", tmp_path / "blocked"
    os.mkfifo(fifo)
    cmd = [sys.executable, str(HERE / "_watch_stuck.py"), str(fifo), str(marker),
           "watch", "--vault", str(vault), "--index-dir", str(index_dir), "--json-log"]
    with subprocess.Popen(cmd, env=ENV, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 120
            while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert marker.exists(), proc.stderr.read()
            time.sleep(0.2)  # inside the read now
            t = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            seconds = time.monotonic() - t
            tail = proc.stderr.read().strip().splitlines()
        finally:
            if proc.poll() is None:
                proc.kill()
    print(f"watcher blocked in read() stopped {seconds:.2f} s after SIGTERM")
    assert code == 0 and seconds < 5  # the grace is 0.8 s; a hang would be forever
    last = json.loads(tail[-1])
    assert (last["event"], last["forced"]) == ("stop", True)
    assert holder(index_dir) is None
    # the index opens, is consistent, and the next writer is not refused
    with open_index(index_dir, notify=lambda m: None) as idx:
        assert idx.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
