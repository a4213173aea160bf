"""atomic_write: the one write path for files tropegraph owns (reports, curation, service units)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from indexer import fsutil


def test_writes_text_as_utf8_creating_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "note.md"
    fsutil.atomic_write(target, "карта смысла\n")
    assert target.read_bytes() == "карта смысла\n".encode()
    assert stat.S_IMODE(target.stat().st_mode) == fsutil.file_mode()
    assert [p.name for p in target.parent.iterdir()] == ["note.md"]


def test_a_failed_replace_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "tropegraph.toml"
    target.write_text("old = 1\n", encoding="utf-8")

    def boom(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        fsutil.atomic_write(target, b"new = 2\n")
    assert target.read_text(encoding="utf-8") == "old = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tropegraph.toml"]
