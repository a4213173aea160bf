"""python tests/vaultgen --out DIR [--truth TRUTH.json] [--scale N] [--seed S] [--pack PACK.json]"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python tests/vaultgen`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vaultgen import generate


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="vaultgen", description="Write a synthetic Nexus vault (planted corpus "
                                 "with ground truth, or --scale N filler conversations).")
    ap.add_argument("--out", required=True, type=Path, help="vault folder to write")
    ap.add_argument("--truth", type=Path, help="write the ground truth (JSON) here")
    ap.add_argument("--scale", type=int, help="N filler conversations instead of the planted corpus")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--pack", type=Path, help="content pack (default: packs/dev.json)")
    ap.add_argument("--pack-styles", action="store_true",
                    help="render each planted conversation in its pack style/locale (no layout tour)")
    a = ap.parse_args(argv)
    truth = generate(a.out, scale=a.scale, seed=a.seed, pack=a.pack, truth=a.truth, tour=not a.pack_styles)
    convs = truth["conversations"]
    turns = sum(len(c["turns"]) for c in convs)
    planted = f", {len(truth['occurrences'])} planted occurrences" if "occurrences" in truth else ""
    print(f"wrote {len(convs)} notes, {turns} turns{planted} to {a.out}")


if __name__ == "__main__":
    main()
