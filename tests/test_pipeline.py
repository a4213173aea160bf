"""The write path with the fast FakeEmbedder: incremental runs, moves, re-imports, failures, hooks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from index_helpers import append_turns, check_consistent, rename_every_folder, run_index, snapshot

from indexer import hooks
from indexer.embed import FakeEmbedder
from indexer.errors import ModelMismatch
from indexer.pipeline import Changes, Pipeline, is_ignored, note_sections, scan
from indexer.store import open_index
from vault_schema.parse import load_note, parse_note


def _notes(vault: Path) -> list[Path]:
    return sorted(p for p in vault.rglob("*.md") if ".obsidian" not in p.parts)


def _distinct_passages(index_dir: Path) -> int:
    with open_index(index_dir, readonly=True) as idx:
        return idx.db.execute("SELECT count(DISTINCT hash) FROM passages").fetchone()[0]


@pytest.fixture
def indexed(planted_vault: tuple[Path, dict], tmp_path: Path) -> tuple[Path, Path, FakeEmbedder]:
    vault, _ = planted_vault
    index_dir = tmp_path / "index"
    emb = FakeEmbedder()
    report = run_index(vault, index_dir, emb)
    assert report.notes_failed == 0
    return vault, index_dir, emb


def test_first_run_indexes_every_turn_of_the_truth(planted_vault: tuple[Path, dict], tmp_path: Path) -> None:
    vault, truth = planted_vault
    emb = FakeEmbedder()
    report = run_index(vault, tmp_path / "index", emb)
    notes = _notes(vault)
    parsed_turns = sum(len(load_note(vault, p.relative_to(vault).as_posix()).turns) for p in notes)
    assert report.notes_seen == len(notes)
    assert report.notes_changed == len(notes)
    assert report.turns_added == parsed_turns
    assert parsed_turns == sum(len(c["turns"]) for c in truth["conversations"])
    # every distinct passage embedded exactly once, in one model call per text
    assert report.passages_embedded == _distinct_passages(tmp_path / "index")
    assert len(emb.embedded) == len(set(emb.embedded)) == report.passages_embedded
    counts = check_consistent(tmp_path / "index")
    assert counts["vectors"] == report.passages_embedded


def test_second_run_embeds_nothing(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, emb = indexed
    calls = len(emb.calls)
    report = run_index(vault, index_dir, emb)
    assert (report.notes_changed, report.passages_embedded, report.turns_added) == (0, 0, 0)
    assert report.notes_unchanged == report.notes_seen == len(_notes(vault))
    assert len(emb.calls) == calls


def test_touched_files_are_hashed_not_reparsed(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, emb = indexed
    for note in _notes(vault):
        os.utime(note, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    report = run_index(vault, index_dir, emb)
    assert (report.notes_changed, report.passages_embedded) == (0, 0)
    with open_index(index_dir) as idx:  # the new mtimes were recorded: the next scan is quiet
        assert not scan(vault, idx)


def test_renaming_every_folder_embeds_nothing_and_keeps_turn_ids(
    indexed: tuple[Path, Path, FakeEmbedder],
) -> None:
    vault, index_dir, emb = indexed
    with open_index(index_dir, readonly=True) as idx:
        before = dict(idx.db.execute("SELECT uid, id FROM turns").fetchall())
    assert rename_every_folder(vault) > 3
    report = run_index(vault, index_dir, emb)
    assert report.notes_moved == len(_notes(vault))
    assert (report.notes_removed, report.notes_changed, report.passages_embedded) == (0, 0, 0)
    assert (report.turns_added, report.turns_removed) == (0, 0)
    with open_index(index_dir, readonly=True) as idx:
        assert dict(idx.db.execute("SELECT uid, id FROM turns").fetchall()) == before
        paths = [r[0] for r in idx.db.execute("SELECT path FROM notes")]
    assert all("-renamed/" in p for p in paths)
    check_consistent(index_dir)


def test_moving_a_note_between_month_folders(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, emb = indexed
    note = next(p for p in _notes(vault) if "/2025/03/" in p.as_posix())
    target = vault / "Nexus/Conversations/chatgpt/2024/12" / note.name
    target.parent.mkdir(parents=True)
    shutil.move(note, target)
    report = run_index(vault, index_dir, emb)
    assert (report.notes_moved, report.passages_embedded, report.notes_removed) == (1, 0, 0)


def test_reimport_appending_k_turns_embeds_exactly_k(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, emb = indexed
    note = _notes(vault)[3]
    before = len(load_note(vault, note.relative_to(vault).as_posix()).turns)
    texts = append_turns(note, 3)
    after = load_note(vault, note.relative_to(vault).as_posix()).turns
    assert len(after) == before + 3
    emb.calls.clear()
    report = run_index(vault, index_dir, emb)
    assert report.turns_added == 3
    assert (report.turns_updated, report.turns_removed) == (0, 0)
    assert report.passages_embedded == 3
    assert sorted(emb.embedded) == sorted(t.text for t in after[before:])
    assert {t.text for t in after[before:]} == set(texts)


def test_reimport_under_a_new_name_keeps_vectors(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    """Nexus sometimes rewrites a conversation at a new path: delete + create with one more turn."""
    vault, index_dir, emb = indexed
    note = _notes(vault)[5]
    append_turns(note, 1)
    note.rename(note.with_name("renamed by the plugin.md"))
    report = run_index(vault, index_dir, emb)
    assert report.notes_removed == 1 and report.notes_changed == 1
    assert report.passages_embedded == 1
    check_consistent(index_dir)


def test_edited_turn_reembeds_only_that_turn(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, emb = indexed
    note = _notes(vault)[0]
    rel = note.relative_to(vault).as_posix()
    turn = load_note(vault, rel).turns[0]
    first_line = turn.text.split("\n")[0]
    text = note.read_text(encoding="utf-8")
    assert text.count(first_line) >= 1
    note.write_text(text.replace(first_line, first_line + " Совсем новое окончание.", 1), encoding="utf-8")
    emb.calls.clear()
    report = run_index(vault, index_dir, emb)
    assert report.notes_changed == 1
    assert report.turns_updated == 1 and report.turns_added == 0
    assert report.passages_embedded >= 1
    assert all("Совсем новое окончание" in t for t in emb.embedded)
    check_consistent(index_dir)


def test_deleting_notes_removes_their_rows_and_unused_vectors(
    indexed: tuple[Path, Path, FakeEmbedder],
) -> None:
    vault, index_dir, emb = indexed
    gone = _notes(vault)[:4]
    turns = sum(len(load_note(vault, p.relative_to(vault).as_posix()).turns) for p in gone)
    for p in gone:
        p.unlink()
    report = run_index(vault, index_dir, emb)
    assert report.notes_removed == 4
    assert report.turns_removed == turns
    assert report.vectors_removed > 0
    with open_index(index_dir, readonly=True) as idx:
        paths = {r[0] for r in idx.db.execute("SELECT path FROM notes")}
    assert not paths & {p.relative_to(vault).as_posix() for p in gone}
    counts = check_consistent(index_dir)
    assert counts["vectors"] == _distinct_passages(index_dir)


def _index_as_is(vault: Path, index_dir: Path, emb: FakeEmbedder) -> tuple[int, list[tuple[str, str]]]:
    import faiss

    faiss.omp_set_num_threads(1)  # in a forked child: no OpenMP pool
    report = run_index(vault, index_dir, emb)
    return report.notes_failed, [(f.path, f.message) for f in report.failures]


def test_unreadable_note_is_reported_and_retried(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    """As root (CI) the run that meets the unreadable note runs as ``nobody`` (root reads any file)."""
    from as_nobody import IS_ROOT, as_nobody, cleanup, give_to_nobody, shared_dir

    vault, index_dir, emb = indexed
    base = shared_dir() if IS_ROOT else None
    if base is not None:  # a copy nobody may write (pytest's tmp_path is 0700 root)
        shutil.copytree(vault, base / "vault")
        shutil.copytree(index_dir, base / "index")
        vault, index_dir = base / "vault", base / "index"
        give_to_nobody(base)
    try:
        bad = vault / "Broken.md"
        bad.write_text("# a note\n\nsome text\n", encoding="utf-8")
        if base is not None:
            os.chown(bad, 0, 0)  # root's, mode 0: nobody cannot read it
        bad.chmod(0)
        try:
            failed, failures = (as_nobody if IS_ROOT else lambda f, *a: f(*a))(_index_as_is, vault, index_dir, emb)
        finally:
            bad.chmod(0o644)
        assert failed == 1
        assert failures[0][0] == "Broken.md"
        assert "permission denied" in failures[0][1]
        report = run_index(vault, index_dir, emb)
        assert (report.notes_failed, report.notes_changed) == (0, 1)
    finally:
        if base is not None:
            cleanup(base)


def test_failing_note_never_recorded_as_indexed(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, emb = indexed
    (vault / "bad.md").write_text("# a note\n\nsome text\n", encoding="utf-8")

    def loader(root: Path, rel: str):  # the file vanishes between scan and read
        from vault_schema.errors import NoteReadError

        if rel == "bad.md":
            raise NoteReadError(rel, "no such file (it may have been moved or deleted)")
        return load_note(root, rel)

    with open_index(index_dir) as idx:
        changes = scan(vault, idx)
        assert changes.created == ["bad.md"]
        report = Pipeline(idx, vault, emb, loader=loader).apply(changes)
        assert report.notes_failed == 1
        assert str(report.failures[0]) == "bad.md: no such file (it may have been moved or deleted)"
        assert idx.db.execute("SELECT count(*) FROM notes WHERE path = 'bad.md'").fetchone()[0] == 0
        assert scan(vault, idx).created == ["bad.md"]


def test_duplicate_conversation_is_a_failure_naming_both_paths(
    indexed: tuple[Path, Path, FakeEmbedder],
) -> None:
    vault, index_dir, emb = indexed
    original = _notes(vault)[2]
    copy = vault / "copy of a conversation.md"
    shutil.copyfile(original, copy)
    append_turns(copy, 1)  # different bytes, same conversation id
    report = run_index(vault, index_dir, emb)
    assert report.notes_failed == 1
    assert report.failures[0].path == "copy of a conversation.md"
    assert original.relative_to(vault).as_posix() in report.failures[0].message


def test_plain_notes_become_sections(tmp_path: Path) -> None:
    vault = tmp_path / "v"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "Ideas.md").write_text(
        "Intro line about rivers.\n\n# Bridges\nA bridge is a metaphor.\n\n```\n# not a heading\n```\n"
        "## Maps\nThe map is not the territory. #maps [[Bridges]]\n",
        encoding="utf-8",
    )
    note = parse_note((vault / "Ideas.md").read_bytes(), "Ideas.md")
    sections = note_sections(note)
    assert [t.uid for t in sections] == ["(top)#0", "Bridges#0", "Maps#0"]
    assert "# not a heading" in sections[1].text
    report = run_index(vault, tmp_path / "ix", FakeEmbedder())
    assert report.turns_added == 3
    with open_index(tmp_path / "ix", readonly=True) as idx:
        assert idx.db.execute("SELECT id FROM conversations").fetchall() == [("note:Ideas.md",)]
        assert {r[0] for r in idx.db.execute("SELECT role FROM turns")} == {"note"}
        assert idx.db.execute("SELECT name FROM tags").fetchall() == [("maps",)]
        assert idx.db.execute("SELECT target FROM links").fetchall() == [("Bridges",)]


def test_reports_and_temporaries_are_never_indexed(tmp_path: Path) -> None:
    vault = tmp_path / "v"
    for folder in (".obsidian", ".trash", ".git", "Tropegraph", "notes"):
        (vault / folder).mkdir(parents=True)
    for rel in (
        ".trash/old.md",
        ".git/x.md",
        "Tropegraph/report.md",
        "notes/a.md.tmp",
        "notes/.#a.md",
        "notes/~$a.md",
        "notes/a.sync-conflict-20250101-1234.md",
        "notes/pic.png",
        "notes/a.md",
    ):
        (vault / rel).write_text("text", encoding="utf-8")
    (vault / "notes/own.md").write_text(
        "---\ntropegraph: report\n---\n# Report\nMetaphors found.\n", encoding="utf-8"
    )
    report = run_index(vault, tmp_path / "ix", FakeEmbedder())
    with open_index(tmp_path / "ix", readonly=True) as idx:
        notes = dict(idx.db.execute("SELECT path, kind FROM notes").fetchall())
        turns = idx.db.execute(
            "SELECT count(*) FROM turns t JOIN notes n ON n.id = t.note_id WHERE n.path = 'notes/own.md'"
        ).fetchone()[0]
    assert set(notes) == {"notes/a.md", "notes/own.md"}
    assert notes["notes/own.md"] == "tropegraph-report" and turns == 0
    assert report.notes_skipped == 1
    assert is_ignored("Tropegraph/x.md") and is_ignored(".obsidian/x.md") and is_ignored("a/b.txt")
    assert not is_ignored("Nexus/Conversations/chatgpt/2025/03/a.md")


def test_hooks_get_added_and_removed_turn_ids(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, emb = indexed
    calls: list[tuple[list[int], list[int]]] = []

    def hook(index, added, removed):
        calls.append((added, removed))

    def broken(index, added, removed):
        raise RuntimeError("boom")

    note = _notes(vault)[1]
    with open_index(index_dir, readonly=True) as idx:
        old_ids = sorted(
            r[0]
            for r in idx.db.execute(
                "SELECT t.id FROM turns t JOIN notes n ON n.id = t.note_id WHERE n.path = ?",
                (note.relative_to(vault).as_posix(),),
            )
        )
    append_turns(_notes(vault)[0], 2)
    note.unlink()
    hooks.AFTER_BATCH.extend([hook, broken])
    try:
        report = run_index(vault, index_dir, emb)
    finally:
        hooks.AFTER_BATCH.remove(hook)
        hooks.AFTER_BATCH.remove(broken)
    added = [i for a, _ in calls for i in a]
    removed = sorted(i for _, r in calls for i in r)
    assert len(added) == 2 and removed == old_ids
    assert any("after-batch hook" in w and "boom" in w for w in report.warnings)
    with open_index(index_dir, readonly=True) as idx:
        assert (
            idx.db.execute(
                f"SELECT count(*) FROM turns WHERE id IN ({','.join('?' * len(added))})", added
            ).fetchone()[0]
            == 2
        )


def test_small_batches_commit_progressively(planted_vault: tuple[Path, dict], tmp_path: Path) -> None:
    vault, _ = planted_vault
    seen: list[tuple[int, int]] = []
    report = run_index(
        vault, tmp_path / "ix", FakeEmbedder(), batch_notes=5, progress=lambda d, t: seen.append((d, t))
    )
    n = len(_notes(vault))
    assert report.batches == n // 5 + 1  # a commit every 5 notes, then the final one
    assert seen[-1] == (n, n)
    check_consistent(tmp_path / "ix")


def test_other_model_raises_mismatch_and_full_switches(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, _ = indexed
    other = FakeEmbedder("other", dim=16)
    with pytest.raises(ModelMismatch) as err:
        run_index(vault, index_dir, other)
    assert "fake/default" in str(err.value) and "fake/other" in str(err.value)
    assert "tropegraph index --full" in str(err.value)
    report = run_index(vault, index_dir, other, full=True)
    assert report.passages_embedded == _distinct_passages(index_dir)
    with open_index(index_dir, readonly=True) as idx:
        assert {r[0] for r in idx.db.execute("SELECT DISTINCT model FROM vectors")} == {"fake/other"}
        assert idx.dim == 16
    check_consistent(index_dir)


def test_full_rerun_with_same_model_reuses_every_vector(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, emb = indexed
    before = snapshot(index_dir)
    report = run_index(vault, index_dir, emb, full=True)
    assert report.passages_embedded == 0
    assert report.notes_changed == len(_notes(vault))
    assert snapshot(index_dir) == before


def test_changes_is_falsy_when_nothing_to_do(indexed: tuple[Path, Path, FakeEmbedder]) -> None:
    vault, index_dir, _ = indexed
    with open_index(index_dir) as idx:
        changes = scan(vault, idx)
    assert not changes and changes.total == 0 and changes.seen == len(_notes(vault))
    assert Changes(created=["a.md"]).total == 1


def test_missing_vectors_are_swept_by_full_runs_not_watcher_batches(
    indexed: tuple[Path, Path, FakeEmbedder],
) -> None:
    vault, ix, emb = indexed
    with open_index(ix, notify=lambda m: None) as idx:
        idx.db.execute("BEGIN IMMEDIATE")
        lost = idx.db.execute("DELETE FROM vectors WHERE id IN (SELECT id FROM vectors LIMIT 3)").rowcount
        idx.db.execute("COMMIT")
        assert lost == 3
        quick = Pipeline(idx, vault, emb).apply(Changes(), gc=False)  # a watcher batch: no full read
        assert quick.passages_embedded == 0
        swept = Pipeline(idx, vault, emb).apply(Changes(), sweep=True)
        assert swept.passages_embedded == lost
    check_consistent(ix)
