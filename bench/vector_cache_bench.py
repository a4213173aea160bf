"""What keeping the FAISS cache file (``vectors.faiss``) current costs, and what being late costs.

    python bench/vector_cache_bench.py                       # 49k and 175k vectors, flat and IVF
    python bench/vector_cache_bench.py --sizes 20000 --kinds flat --json

For each size and kind, a scratch index holds random unit vectors (384-dim, the bundled model's
size) in its ``vectors`` table. Figures:

* ``save``: ``VectorCache.save`` (write + fsync + sidecar), what every ``Pipeline.apply`` used
  to pay at its end, watcher batches included.
* ``load``: loading an up-to-date file (read + id check), the floor for any cold reader.
* ``reconcile 1%`` / ``10%``: loading a file that is behind SQLite by that share of removed
  *and* that share of added vectors (a watcher killed between its saves): removes and adds in
  place. ``rebuild``: what the same load did before (read every blob, build; IVF: k-means too).
* ``watcher``: 20 small batches (20 vectors added, 5 removed each) through ``Index``, once with
  a save after every batch (the old behaviour) and once deferred (one save at the end).

The machine is shared: compare ratios measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from indexer.store import open_index
from indexer.vectors import VectorCache, index_ids, sql_ids, to_blob

MODEL, DIM = "bench/random", 384


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def insert(db: sqlite3.Connection, rng: np.random.Generator, n: int, tag: str) -> None:
    with db:
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            db.executemany(
                "INSERT INTO vectors (model, hash, vector) VALUES (?, ?, ?)",
                [(MODEL, f"{tag}-{start + i}", to_blob(v)) for i, v in enumerate(unit(rng, m))],
            )


def delete_random(db: sqlite3.Connection, rng: np.random.Generator, n: int) -> list[int]:
    ids = sql_ids(db, MODEL)
    gone = rng.choice(ids, size=min(n, len(ids)), replace=False).tolist()
    with db:
        db.executemany("DELETE FROM vectors WHERE id = ?", [(i,) for i in gone])
    return gone


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench(size: int, kind: str, root: Path, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ix = root / f"{kind}-{size}"
    with open_index(ix, create=True, notify=lambda m: None) as idx:
        for key, value in (("model", MODEL), ("dim", DIM), ("engine", "bench"), ("faiss_kind", kind)):
            idx.set_meta(key, value)
    db = sqlite3.connect(ix / "index.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    insert(db, rng, size, "base")
    cache = VectorCache(ix, notify=lambda m: None)
    out: dict[str, Any] = {"size": size, "kind": kind}

    built_s, loaded = timed(lambda: cache.rebuild(db, MODEL, DIM, kind))
    out["build_s"] = built_s
    out["save_s"], _ = timed(lambda: cache.save(loaded.index, MODEL, kind, loaded.trained))
    out["file_mb"] = (ix / "vectors.faiss").stat().st_size / 1e6
    out["load_s"], _ = timed(lambda: cache.load(db, MODEL, DIM, kind))

    # Drift accumulates against the same saved file: 1% removed + 1% added, then 10% + 10%.
    done = 0
    messages: list[str] = []
    cache.notify = messages.append
    for pct in (1, 10):
        n = size * pct // 100 - done
        delete_random(db, rng, n)
        insert(db, rng, n, f"drift{pct}")
        done += n
        messages.clear()
        secs, got = timed(lambda: cache.load(db, MODEL, DIM, kind))
        assert np.array_equal(np.sort(index_ids(got.index)), sql_ids(db, MODEL)), "reconcile lost ids"
        assert messages and "out of date" in messages[0], messages
        out[f"reconcile_{pct}pct_s"] = secs
    out["rebuild_s"], _ = timed(lambda: cache.rebuild(db, MODEL, DIM, kind))
    db.close()

    # A watcher-like sequence on the same index, through Index (refresh + save) like the pipeline.
    with open_index(ix, notify=lambda m: None) as idx:
        idx.vector_index()  # load (reconcile) and save once, outside the clock
        wdb = sqlite3.connect(ix / "index.db", isolation_level=None)
        for mode in ("per_batch", "deferred"):
            t = time.perf_counter()
            for b in range(20):
                insert(wdb, rng, 20, f"{mode}{b}")
                gone = delete_random(wdb, rng, 5)
                idx.refresh_vectors(removed_ids=gone)
                if mode == "per_batch":
                    idx.save_vectors()
            idx.save_vectors()  # deferred: the one save a stop or the 60 s timer makes
            out[f"watcher_{mode}_s"] = time.perf_counter() - t
        wdb.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="49000,175000", help="comma-separated vector counts")
    parser.add_argument("--kinds", default="flat,ivf", help="comma-separated FAISS kinds (flat, ivf)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tg-vcache-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            for kind in args.kinds.split(","):
                r = bench(size, kind, Path(tmp))
                if args.json:
                    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}))
                    continue
                print(
                    f"{kind:4} {size:>7} vectors ({r['file_mb']:.0f} MB): save {r['save_s']:.2f} s, "
                    f"load current {r['load_s']:.2f} s | stale by 1%: reconcile {r['reconcile_1pct_s']:.2f} s, "
                    f"10%: {r['reconcile_10pct_s']:.2f} s vs rebuild {r['rebuild_s']:.2f} s "
                    f"({r['rebuild_s'] / r['reconcile_1pct_s']:.0f}x / {r['rebuild_s'] / r['reconcile_10pct_s']:.0f}x) "
                    f"| 20 watcher batches: save each {r['watcher_per_batch_s']:.2f} s, "
                    f"deferred {r['watcher_deferred_s']:.2f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
