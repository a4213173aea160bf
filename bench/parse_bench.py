"""Parser throughput: notes/s and MB/s of ``vault_schema.parse`` over a generated vault.

    python bench/parse_bench.py [--scale 2000] [--seed 7] [--repeat 3] [--big-mb 0]

Generates a ``--scale`` filler vault (every Nexus layout from 1.0.x headings to 1.6.x, every
locale family and custom timestamp format) with the tests' generator (``tests/vaultgen``) into a
temporary folder, reads every note into memory, then
times ``parse_note`` alone (best of ``--repeat``) and ``load_note`` (read + parse) once.
``--big-mb N`` also times one synthetic N-MB conversation note built from the vault's notes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=2000, help="conversations in the generated vault")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the in-memory notes (best is kept)")
    ap.add_argument("--big-mb", type=float, default=0, help="also time one synthetic note of this many MB")
    a = ap.parse_args()

    from _corpus import filler_vault

    from vault_schema.parse import load_note, parse_note
    with tempfile.TemporaryDirectory(prefix="tropegraph-parse-bench-") as tmp:
        vault = Path(tmp) / "vault"
        t0 = time.perf_counter()
        filler_vault(vault, a.scale, a.seed)
        gen_s = time.perf_counter() - t0
        paths = sorted(p.relative_to(vault).as_posix() for p in vault.rglob("*.md"))
        data = [(rel, (vault / rel).read_bytes()) for rel in paths]
        total_mb = sum(len(b) for _, b in data) / 1e6
        print(f"vault: {len(paths)} notes, {total_mb:.1f} MB (generated in {gen_s:.1f} s)")

        best = float("inf")
        turns = warnings = 0
        for _ in range(max(1, a.repeat)):
            t0 = time.perf_counter()
            notes = [parse_note(b, rel) for rel, b in data]
            best = min(best, time.perf_counter() - t0)
            turns = sum(len(n.turns) for n in notes)
            warnings = sum(len(n.warnings) for n in notes)
        print(f"parse_note: {len(data) / best:,.0f} notes/s, {total_mb / best:.2f} MB/s, "
              f"{turns / best:,.0f} turns/s ({turns} turns, {warnings} warnings; best of {a.repeat}: {best:.2f} s)")

        t0 = time.perf_counter()
        for rel in paths:
            load_note(vault, rel)
        load_s = time.perf_counter() - t0
        print(f"load_note (read + parse): {len(paths) / load_s:,.0f} notes/s, {total_mb / load_s:.2f} MB/s")

        if a.big_mb:
            chunks, size = [], 0
            bodies = [b.decode("utf-8").split("\n\n\n", 1)[-1] for _, b in data]
            i = 0
            while size < a.big_mb * 1e6:
                body = bodies[i % len(bodies)].replace("<!-- UID: ", f"<!-- UID: {i}-")
                chunks.append(body)
                size += len(body.encode("utf-8"))
                i += 1
            big = "".join(chunks).encode("utf-8")
            t0 = time.perf_counter()
            note = parse_note(big, "big.md")
            big_s = time.perf_counter() - t0
            print(f"one {len(big) / 1e6:.0f} MB note: {big_s:.1f} s, {len(big) / 1e6 / big_s:.2f} MB/s "
                  f"({len(note.turns)} turns)")


if __name__ == "__main__":
    main()
