"""The MCP server's index holder (``interfaces.mcp_server.Reader``), in-process: caching, reopening.

The tools themselves are tested through the SDK's client in ``test_mcp.py``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from index_helpers import run_index
from test_reading import UIDS, nexus_note

from indexer.embed import FakeEmbedder
from indexer.store import open_index
from interfaces.mcp_server import Reader


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Path, Path]:
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "Разговор.md").write_text(nexus_note(["Первая реплика.", "Вторая реплика."], UIDS[:2]), encoding="utf-8")
    run_index(vault, tmp_path / "index", FakeEmbedder())
    return vault, tmp_path / "index"


def test_cached_values_last_until_another_connection_commits(indexed: tuple[Path, Path]) -> None:
    vault, index_dir = indexed
    reader = Reader(str(vault), str(index_dir))
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return reader.index().counts()["turns"]

    try:
        assert reader.cached(("turns",), compute) == 2
        assert reader.cached(("turns",), compute) == 2 and len(calls) == 1
        with open_index(index_dir) as writer:  # a watcher's commit
            writer.db.execute("BEGIN IMMEDIATE")
            writer.set_meta("touched", "1")
            writer.db.execute("COMMIT")
        assert reader.cached(("turns",), compute) == 2 and len(calls) == 2
    finally:
        reader.close()


def test_an_index_replaced_on_disk_is_reopened(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    vault, index_dir = indexed
    reader = Reader(str(vault), str(index_dir))
    try:
        first = reader.index()
        assert reader.index() is first
        copy = tmp_path / "copy.db"
        shutil.copyfile(index_dir / "index.db", copy)
        os.replace(copy, index_dir / "index.db")  # a new file (inode) at the same path
        assert reader.index() is not first
    finally:
        reader.close()
