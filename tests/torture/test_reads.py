"""Reads never block or run without end; small findings of #17 about what is read and how.

Fast, in-process: ``vault_schema.files`` on FIFOs/devices/caps, ``load_note`` messages,
duplicate frontmatter keys (6), a ``\\r`` in a tracked phrase (6).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.metaphors import curation
from vault_schema import files
from vault_schema.errors import NoteReadError
from vault_schema.parse import load_note, parse_note


def _returns_quickly(fn, *args, **kwargs):
    """Run ``fn`` on a thread; fail (instead of hanging the suite) if it takes more than 10 s."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), f"{fn.__name__} blocked"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_a_fifo_is_never_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    for fn in (files.read_bytes, files.sha256):
        with pytest.raises(files.NotRegularFile) as exc:
            _returns_quickly(fn, fifo)
        assert exc.value.strerror == "not a regular file but a FIFO (named pipe)"
    with pytest.raises(NoteReadError) as exc:
        _returns_quickly(load_note, tmp_path, "pipe.md")
    assert str(exc.value) == "pipe.md: not a regular file but a FIFO (named pipe); skipped (only plain files are read)"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_device_is_never_read(tmp_path: Path, device: str) -> None:
    (tmp_path / "dev.md").symlink_to(device)
    with pytest.raises(NoteReadError) as exc:
        _returns_quickly(load_note, tmp_path, "dev.md")
    assert str(exc.value) == "dev.md: not a regular file but a character device; skipped (only plain files are read)"


def test_reads_stop_at_the_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.md"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(files.TooLarge):
        files.read_bytes(big, max_bytes=4999)
    assert files.read_bytes(big, max_bytes=5000) == b"x" * 5000
    assert files.sha256(big, max_bytes=100).startswith("size:5000:mtime:")  # not read at all
    note = load_note(tmp_path, "big.md", max_bytes=1000)
    assert note.kind == "empty" and [w.code for w in note.warnings] == ["too-large"]
    assert files.read_head(big, 10) == b"x" * 10


def test_symlinked_file_outside_the_vault_is_refused(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    (vault / "s.md").symlink_to(tmp_path / "secret.txt")
    (vault / "ok.md").write_text("# ok\n", encoding="utf-8")
    (vault / "alias.md").symlink_to(vault / "ok.md")
    with pytest.raises(NoteReadError) as exc:
        load_note(vault, "s.md")
    assert str(exc.value) == (
        f"s.md: is a symbolic link to {(tmp_path / 'secret.txt').resolve()}, outside the vault; skipped "
        "(only files inside the vault are read)"
    )
    assert load_note(vault, "alias.md").title == "alias"


def test_duplicate_frontmatter_keys_are_a_warning() -> None:
    note = parse_note("---\ntitle: a\ntags: [x]\ntitle: b\n---\nТекст.\n", "n.md")
    assert [str(w) for w in note.warnings] == [
        ("n.md:4: frontmatter key 'title' is given twice (lines 2 and 4); Obsidian rejects such properties: "
        "keep one (tropegraph uses the last)")
    ]
    assert note.frontmatter["title"] == "b"
    nested = parse_note("---\na:\n  b: 1\n  b: 2\nc: 3\n---\n", "n.md")
    assert [w.line for w in nested.warnings if w.code == "duplicate-frontmatter-key"] == [4]
    assert not parse_note("---\na: 1\nb: 1\n---\n", "n.md").warnings


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).filter(lambda s: s.split()))
def test_any_tracked_phrase_keeps_the_curation_file_valid(phrase: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        curation.append_entry(Path(d), "track", phrase=phrase, aliases=[phrase + "\r\n"])
        c = curation.load(Path(d))
    assert not c.warnings
    assert c.track == ((" ".join(phrase.split()), (" ".join(phrase.split()),)),)


def test_a_carriage_return_in_a_tracked_phrase_is_not_a_malformed_file(tmp_path: Path) -> None:
    curation.append_entry(tmp_path, "track", phrase="карта\rсмысла")
    c = curation.load(tmp_path)
    assert c.warnings == () and c.track == (("карта смысла", ()),)


def test_a_curation_fifo_is_a_warning_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / curation.FILENAME)
    c = _returns_quickly(curation.load, tmp_path)
    assert c.warnings == (
        (f"{tmp_path / curation.FILENAME}: cannot read curation file (not a regular file but a FIFO (named pipe)); "
        "ignored"),
    )


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path: Path) -> None:
    """Finding 6: a save cut short by a kill leaves its temporary file; the next save removes it
    (the FAISS cache's: tests/torture/test_vector_checksum.py)."""
    from indexer import fsutil
    from queries.reports import write_files

    folder = tmp_path / "Tropegraph"
    folder.mkdir()
    old, young = folder / ".x.md.abc123.tmp", folder / ".y.md.def456.tmp"
    old.write_text("half a report")
    young.write_text("a save in progress")
    os.utime(old, (0, 0))
    write_files(tmp_path, "Tropegraph", {"x.md": "---\ntropegraph: report\n---\n"})
    assert not old.exists() and young.exists()  # a young one may be another process' save

    stale = tmp_path / f".{curation.FILENAME}.zz9.tmp"
    stale.write_text("[[track]]")
    os.utime(stale, (0, 0))
    curation.append_entry(tmp_path, "track", phrase="сад памяти")
    assert not stale.exists()
    assert fsutil.remove_stale_temps(tmp_path / "missing") == []


def test_an_index_folder_under_a_file_is_one_clear_error(tmp_path: Path) -> None:
    from indexer.store import open_index
    from vault_schema.errors import VaultError

    (tmp_path / "f").write_text("a file, not a folder")
    with pytest.raises(VaultError) as exc:
        open_index(tmp_path / "f" / "ix", create=True)
    assert str(exc.value) == f"cannot use {tmp_path / 'f' / 'ix'} (Not a directory); check the path and run the command again"
