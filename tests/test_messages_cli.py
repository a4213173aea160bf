"""Every message of a newcomer's first hour says what happened and what to run next (issue #13).

Exact texts, through click: an interrupted `index`, a missing index, an empty or non-vault folder,
quiet cache repairs (`-v` shows them), vault-relative `parse`, warnings and failures in `status`,
and `index --progress json`.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from index_helpers import append_turns

from indexer import pipeline
from indexer.embed import FakeEmbedder
from indexer.store import open_index
from interfaces.cli import cli
from vault_schema.parse import load_note


@pytest.fixture
def env(planted_vault: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    vault, _ = planted_vault
    monkeypatch.setenv("TROPEGRAPH_ENGINE", "fake")
    for var in ("TROPEGRAPH_MODEL", "TROPEGRAPH_VAULT", "TROPEGRAPH_INDEX_DIR", "TROPEGRAPH_BATCH_NOTES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no vault around the current folder
    return vault, tmp_path / "ix"


def _notes(vault: Path) -> list[Path]:
    return sorted(p for p in vault.rglob("*.md") if ".obsidian" not in p.parts)


def _index(vault: Path, ix: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(ix), *args])


# ------------------------------------------------------------------------------ interrupted index


def test_interrupted_index_says_what_was_saved_and_how_to_resume(env, monkeypatch) -> None:
    vault, ix = env
    n = len(_notes(vault))
    monkeypatch.setenv("TROPEGRAPH_BATCH_NOTES", "5")
    real = pipeline._default_loader
    calls = []

    def ctrl_c_at_the_13th_note(root: Path, rel: str) -> object:
        calls.append(rel)
        if len(calls) == 13:
            raise KeyboardInterrupt
        return real(root, rel)

    monkeypatch.setattr(pipeline, "_default_loader", ctrl_c_at_the_13th_note)
    res = _index(vault, ix)
    assert res.exit_code == 130
    assert res.stderr == (
        f"Interrupted: 10 of {n} changed notes were saved to the index (the rest and their embeddings are "
        f"not). Run `tropegraph index --vault {vault} --index-dir {ix}` to resume; saved notes are not read "
        "again.\n"
    )
    monkeypatch.setattr(pipeline, "_default_loader", real)
    res = _index(vault, ix)
    assert res.exit_code == 0
    assert f"Notes: {n} seen, {n - 10} changed, 0 moved, 0 removed, 0 failed" in res.stdout


def test_interrupted_embedding_says_how_much_is_embedded(env, monkeypatch) -> None:
    vault, ix = env
    monkeypatch.setenv("TROPEGRAPH_EMBED_WINDOW", "64")  # FakeEmbedder: 64 per call, one call per window
    real = FakeEmbedder.embed_passages
    calls = []

    def ctrl_c_in_the_third_window(self: FakeEmbedder, texts: list[str]) -> object:
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, texts)

    monkeypatch.setattr(FakeEmbedder, "embed_passages", ctrl_c_in_the_third_window)
    res = _index(vault, ix)
    assert res.exit_code == 130
    with open_index(ix, readonly=True) as idx:
        stored = idx.db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        total = idx.db.execute("SELECT count(DISTINCT hash) FROM passages").fetchone()[0]
    assert stored == sum(calls[:2]) == 128
    assert res.stderr == (
        f"Interrupted while embedding: every note is saved and searchable by keyword; {stored} of {total} "
        f"passages were embedded. Run `tropegraph index --vault {vault} --index-dir {ix}` to embed the rest "
        "(search by meaning covers only embedded passages until then).\n"
    )


# ------------------------------------------------------------------------------ no index yet


@pytest.mark.parametrize("command", [["search", "карта"], ["status"], ["metaphors"], ["timeline", "карта"]])
def test_no_index_names_the_exact_index_command(env, command: list[str]) -> None:
    vault, _ = env
    res = CliRunner().invoke(cli, [*command, "--vault", str(vault)], env={"XDG_DATA_HOME": str(vault.parent / "d")})
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: no index at ")
    assert res.stderr.endswith(f"; run `tropegraph index --vault {vault.resolve()}` first\n")


def test_no_index_with_only_an_index_dir(env) -> None:
    _, ix = env
    res = CliRunner().invoke(cli, ["status", "--index-dir", str(ix)])
    assert res.exit_code == 1
    assert res.stderr == (f"Error: no index at {ix}; run `tropegraph index --vault PATH/TO/VAULT "
                          f"--index-dir {ix}` first\n")


# ------------------------------------------------------------------------------ not a vault


def test_empty_folder_is_a_warning_and_leaves_no_index(env) -> None:
    _, ix = env
    empty = ix.parent / "empty"
    empty.mkdir()
    res = _index(empty, ix)
    assert res.exit_code == 0
    assert res.stderr == (f"warning: {empty} is not an Obsidian vault (no .obsidian/ folder) and holds no notes "
                          "(*.md), so nothing was indexed. Pass your vault's folder: "
                          "`tropegraph index --vault PATH/TO/VAULT`\n")
    assert not ix.exists()
    (empty / ".obsidian").mkdir()
    res = _index(empty, ix, "--json")
    assert res.exit_code == 0
    warning = (f"the vault {empty} holds no notes (*.md) yet, so nothing was indexed. Import your chats (Nexus AI "
               f"Chat Importer), then run `tropegraph index --vault {empty} --index-dir {ix}`")
    assert res.stderr == f"warning: {warning}\n"
    assert json.loads(res.stdout)["warnings"] == [warning]
    assert not ix.exists()


def test_notes_without_obsidian_folder_are_indexed_with_a_warning(env) -> None:
    vault, ix = env
    shutil.rmtree(vault / ".obsidian")
    res = _index(vault, ix)
    assert res.exit_code == 0
    assert res.stderr.startswith(f"warning: {vault} has no .obsidian/ folder, so it may not be your vault's top "
                                 "folder; indexing its notes anyway. If it is part of a larger vault, index that "
                                 "instead: `tropegraph index --vault PATH/TO/VAULT`\n")
    assert f"Notes: {len(_notes(vault))} seen" in res.stdout


# ------------------------------------------------------------------------------ quiet cache repairs


def test_cache_repairs_are_quiet_unless_verbose(env, planted_vault) -> None:
    vault, ix = env
    truth = planted_vault[1]
    assert _index(vault, ix).exit_code == 0
    with open_index(ix, readonly=True) as idx:
        before = idx.db.execute("SELECT count(*) FROM vectors").fetchone()[0]
    append_turns(vault / truth["conversations"][0]["path"], 2)  # a re-import adds two turns
    search = ["search", "маяк", "--vault", str(vault), "--index-dir", str(ix), "--mode", "semantic"]
    # a running watcher: its batch stored vectors, its cache file is saved later (on its schedule)
    with open_index(ix, notify=lambda m: None, command="tropegraph watch") as idx:
        pipeline.Pipeline(idx, vault, FakeEmbedder()).apply(pipeline.scan(vault, idx), save_vectors=False)
        added = idx.db.execute("SELECT count(*) FROM vectors").fetchone()[0] - before
        assert added > 0
        quiet = CliRunner().invoke(cli, search)
        loud = CliRunner().invoke(cli, [*search, "-v"])
        group = CliRunner().invoke(cli, ["-v", *search])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert loud.exit_code == 0
    assert loud.stderr == f"tropegraph: vector cache was behind the database; added {added} vectors\n"
    assert group.stderr == loud.stderr


# ------------------------------------------------------------------------------ parse


def test_parse_takes_a_vault_relative_path(env) -> None:
    vault, _ = env
    rel = _notes(vault)[0].relative_to(vault).as_posix()
    note = load_note(vault, rel)
    res = CliRunner().invoke(cli, ["parse", rel, "--vault", str(vault)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == f"{rel}: conversation — {note.title}"
    res = CliRunner().invoke(cli, ["parse", rel], env={"TROPEGRAPH_VAULT": str(vault)})
    assert res.exit_code == 0 and res.stdout.splitlines()[0] == f"{rel}: conversation — {note.title}"
    res = CliRunner().invoke(cli, ["parse", "Nexus/nope.md", "--vault", str(vault)])
    assert res.exit_code == 1
    assert res.stderr == (f"Error: Nexus/nope.md: no such note in the current folder or the vault {vault}. Pass a "
                          "note's path relative to the vault, as `tropegraph search --json` shows it, or to the "
                          "current folder.\n")


# ------------------------------------------------------------------------------ status


def test_status_keeps_showing_warnings_and_the_last_runs_failures(env, fixtures_dir: Path) -> None:
    vault, ix = env
    shutil.copyfile(fixtures_dir / "seed-conversation.md", vault / "seed.md")
    first = _notes(vault)[0]
    (vault / "dup.md").write_bytes(first.read_bytes() + b"\n")  # same conversation id: fails to index
    assert _index(vault, ix).exit_code == 0
    again = _index(vault, ix)  # nothing changed: the warnings are not printed by this run
    assert again.exit_code == 0
    assert "mojibake" not in again.stderr
    assert again.stdout.endswith(
        f"1 note was read with warnings; `tropegraph status --vault {vault} --index-dir {ix}` lists them.\n")
    res = CliRunner().invoke(cli, ["status", "--vault", str(vault), "--index-dir", str(ix), "--json"])
    data = json.loads(res.stdout)
    expected = [dict(w.to_dict(), path="seed.md") for w in load_note(vault, "seed.md").warnings]
    assert data["warnings"] == expected and expected
    (failure,) = data["last_run"]["failures"]
    assert failure["path"] == "dup.md" and data["last_run"]["notes_failed"] == 1
    text = CliRunner().invoke(cli, ["status", "--vault", str(vault), "--index-dir", str(ix)]).stdout
    n = len(_notes(vault))
    assert re.search(rf"^Last run: {{7}}\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \(local time, UTC[+-]\d\d:\d\d\): {n} notes "
                     r"seen, 1 changed, 1 failed, 0 warnings$", text, re.MULTILINE), text
    assert f"  failed: dup.md: {failure['message']} (retried by `tropegraph index --vault {vault} --index-dir {ix}`)\n" in text
    w = expected[0]
    assert "Note warnings:  1 in 1 note (what parsing noticed; they stay until the note changes)\n" in text
    assert f"  seed.md:{w['line']}: {w['message']}\n" in text


# ------------------------------------------------------------------------------ progress as JSON lines


def test_progress_json_streams_events_on_stderr(env, monkeypatch) -> None:
    vault, ix = env
    monkeypatch.setenv("TROPEGRAPH_BATCH_NOTES", "7")
    n = len(_notes(vault))
    res = _index(vault, ix, "--json", "--progress", "json")
    assert res.exit_code == 0
    events = [json.loads(line) for line in res.stderr.splitlines()]
    assert events[0] == {"event": "scanned", "notes_seen": n, "notes_to_index": n}
    saved = [e["notes_saved"] for e in events if e["event"] == "saved"]
    assert saved == [*range(7, n, 7), n]
    embed = [e for e in events if e["event"] == "embed"]
    report = json.loads(res.stdout)
    assert embed[-1] == {"event": "embed", "done": report["passages_embedded"], "total": report["passages_embedded"]}
    assert events[-1]["event"] == "done"


def test_the_words_phase_has_progress_and_resumes_after_ctrl_c(env, monkeypatch) -> None:
    """The last phase of `index` (the vault's words embedded for search across languages) streams
    `words` / `words_embedded` events, says what a Ctrl-C there kept, and the next run embeds only
    the words still missing."""
    import indexer.lexicon

    vault, ix = env
    monkeypatch.setattr(FakeEmbedder, "multilingual", True)  # only a multilingual model builds a lexicon
    monkeypatch.setattr(indexer.lexicon, "LEXICON_BATCH", 5)
    res = _index(vault, ix / "whole", "--json", "--progress", "json")
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stderr.splitlines()]
    (start,) = [e for e in events if e["event"] == "words"]
    total = start["words_total"]
    assert total > 10
    assert [e for e in events if e["event"] == "words_embedded"][-1] == {
        "event": "words_embedded", "done": total, "total": total}
    assert events[-1]["event"] == "done"

    real = FakeEmbedder.embed_terms
    calls: list[int] = []

    def ctrl_c_in_the_second_batch(self: FakeEmbedder, texts: list[str]) -> object:
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, texts)

    monkeypatch.setattr(FakeEmbedder, "embed_terms", ctrl_c_in_the_second_batch)
    res = _index(vault, ix / "cut")
    assert res.exit_code == 130
    assert res.stderr == (
        "Interrupted while embedding the vault's words for search across languages: every note and passage is "
        f"saved and searchable; 5 of {total} words were embedded. Run `tropegraph index --vault {vault} "
        f"--index-dir {ix / 'cut'}` to embed the rest (until then an English question matches Russian notes by "
        "meaning only, and the reverse).\n")
    calls.clear()
    monkeypatch.setattr(FakeEmbedder, "embed_terms", lambda self, texts: (calls.append(len(texts)), real(self, texts))[1])
    assert _index(vault, ix / "cut").exit_code == 0
    assert sum(calls) == total - 5  # the committed batch is not embedded again


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["index", "VAULT"], "A vault is given with --vault: tropegraph index --vault VAULT"),
        (["metaphors", "VAULT"], "A vault is given with --vault: tropegraph metaphors --vault VAULT"),
        (["metaphors", "карта смысла"], "To see one: tropegraph metaphors explain 'карта смысла'"),
    ],
)
def test_a_bare_vault_path_or_phrase_says_how_to_give_it(env, args: list[str], hint: str) -> None:
    """`tropegraph index ~/Vault` is click's "unexpected extra argument": the error says the fix."""
    vault, _ = env
    shutil.copytree(vault, env[1].parent / "VAULT")
    result = CliRunner().invoke(cli, args, prog_name="tropegraph")
    assert result.exit_code == 2
    assert result.output.rstrip().endswith(hint)


def test_an_extra_argument_that_is_no_folder_gets_no_vault_hint(env) -> None:
    result = CliRunner().invoke(cli, ["index", "nothere"], prog_name="tropegraph")
    assert result.exit_code == 2
    assert result.output.rstrip().endswith("Error: Got unexpected extra argument (nothere)")
