"""`tropegraph demo` (the README's first command) through click: it indexes a copy of the bundled
vault, prints searches and metaphors in its own short form, and a second run re-embeds nothing."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from interfaces.cli import cli
from interfaces.commands.demo import bundled_vault

pytestmark = pytest.mark.slow  # indexes 26 notes (fake embedder, real metaphor engine)

RESULT = re.compile(r"  \d\. \[(user|assistant|note)(, \d{4}-\d\d-\d\d)?\] \S.*")


def test_demo_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROPEGRAPH_ENGINE", "fake")
    for var in ("TROPEGRAPH_MODEL", "TROPEGRAPH_VAULT", "TROPEGRAPH_INDEX_DIR"):
        monkeypatch.delenv(var, raising=False)
    notes = len([p for p in bundled_vault().rglob("*.md") if ".obsidian" not in p.parts])
    first = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert first.exit_code == 0, (first.stdout, first.stderr)
    lines = first.stdout.splitlines()
    assert lines[:2] == [f"Demo vault: {tmp_path / 'vault'}", f"Index:      {tmp_path / 'index'}"]
    assert f"Notes: {notes} seen, {notes} changed, 0 moved, 0 removed, 0 failed" in lines
    hits = [line for line in lines if re.match(r"  \d\. \[", line)]
    assert len(hits) == 6 and all(RESULT.fullmatch(h) for h in hits), hits  # 3 per query; no "[note, ]"
    assert lines.count("$ tropegraph metaphors --limit 5") == 1
    assert not any("\x1b" in line for line in lines)
    again = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert again.exit_code == 0
    assert f"Notes: {notes} seen, 0 changed, 0 moved, 0 removed, 0 failed" in again.stdout
    assert "Passages: 0 embedded, 0 reused (fake/default)" in again.stdout
    assert not (bundled_vault() / "Tropegraph").exists()
