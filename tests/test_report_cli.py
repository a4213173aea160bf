"""``tropegraph report`` over the planted index: notes only in the report folder, idempotent reruns."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import frontmatter
import pytest
from click.testing import CliRunner
from test_timeline_cli import build_planted_index, truth_uses

from interfaces.cli import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def planted_index(planted_source: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_planted_index(planted_source, tmp_path_factory)


@pytest.fixture
def vault(planted_source: tuple[Path, dict], tmp_path: Path) -> Path:
    dst = tmp_path / "vault"
    shutil.copytree(planted_source[0], dst)
    return dst


def run(idx: Path, vault: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["report", "--vault", str(vault), "--index-dir", str(idx), *args])


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_report_writes_notes_index_and_graph_only_in_the_report_folder(
    planted_index: Path, planted_source: tuple, vault: Path
) -> None:
    _, truth = planted_source
    before = snapshot(vault)
    result = run(planted_index, vault, "--top", "5", "--no-drift", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    after = snapshot(vault)
    new = sorted(set(after) - set(before))
    assert all(p.startswith("Tropegraph/") for p in new)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing else touched
    assert sorted(out["written"]) == new
    assert "Tropegraph/Metaphors.md" in new and "Tropegraph/graph.html" in new
    notes = [p for p in new if p not in ("Tropegraph/Metaphors.md", "Tropegraph/graph.html")]
    assert len(notes) == out["notes"] == min(5, out["metaphors"])

    # every planted image that made the top has its truth figures in the note's frontmatter
    posts = [frontmatter.load(vault / p) for p in notes]
    assert all(p["tropegraph"] == "report" for p in posts)
    by_label = {p["label"]: p for p in posts}
    checked = 0
    for image_id, image in truth["images"].items():
        post = by_label.get(image["canonical"])
        if post is None:
            continue
        uses = truth_uses(truth, image_id)
        assert post["uses"] == len(uses)
        assert post["introduced_by"] == uses[0]["role"]
        assert post["first_use"][:16] == uses[0]["time"][:16]
        checked += 1
    assert checked >= 1

    index = frontmatter.load(vault / "Tropegraph/Metaphors.md")
    assert index["tropegraph"] == "report" and index["metaphors"] == out["metaphors"]
    assert index.content.count("\n| ") >= out["metaphors"]
    graph = (vault / "Tropegraph/graph.html").read_text(encoding="utf-8")
    assert graph.count('class="node"') == out["metaphors"]
    assert "https://" not in graph


def test_rerun_over_an_unchanged_index_rewrites_nothing(planted_index: Path, vault: Path) -> None:
    first = run(planted_index, vault, "--top", "3")
    assert first.exit_code == 0, first.output
    report_dir = vault / "Tropegraph"
    for p in report_dir.iterdir():
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(report_dir)
    again = run(planted_index, vault, "--top", "3")
    assert again.exit_code == 0, again.output
    assert "written 0," in again.stdout
    assert snapshot(report_dir) == before  # byte-identical, mtimes untouched


def test_smaller_top_prunes_only_report_notes(planted_index: Path, vault: Path) -> None:
    assert run(planted_index, vault, "--top", "3", "--no-drift").exit_code == 0
    mine = vault / "Tropegraph" / "my own thoughts.md"
    mine.write_text("# mine\n", encoding="utf-8")
    result = run(planted_index, vault, "--top", "1", "--no-drift", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["removed"]) == 2
    assert mine.read_text(encoding="utf-8") == "# mine\n"
    assert sorted(p.name for p in (vault / "Tropegraph").glob("*.md")).count("my own thoughts.md") == 1


def test_custom_report_dir_and_bad_report_dir(planted_index: Path, vault: Path) -> None:
    ok = run(planted_index, vault, "--top", "1", "--no-drift", "--report-dir", "Reports/Metaphors")
    assert ok.exit_code == 0, ok.output
    assert (vault / "Reports/Metaphors/Metaphors.md").exists()
    assert not (vault / "Tropegraph").exists()
    bad = run(planted_index, vault, "--report-dir", "../outside")
    assert bad.exit_code == 1
    assert bad.stderr.strip().splitlines() == [
        "Error: report folder '../outside' must be a folder inside the vault, e.g. --report-dir Tropegraph"
    ]


def test_indexer_ignores_the_report_notes(planted_index: Path, vault: Path, tmp_path: Path) -> None:
    idx = tmp_path / "index"
    shutil.copytree(planted_index, idx)
    assert run(idx, vault, "--top", "3", "--no-drift").exit_code == 0
    result = CliRunner().invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(idx), "--json"])
    assert result.exit_code == 0, result.output
    import sqlite3

    with sqlite3.connect(idx / "index.db") as db:
        paths = [r[0] for r in db.execute("SELECT path FROM notes WHERE path LIKE 'Tropegraph/%'")]
    assert paths == []
