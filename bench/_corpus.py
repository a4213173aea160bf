"""Benchmark vaults: filler vaults from the tests' own generator (``tests/vaultgen``).

``filler_vault(out, scale, seed)`` writes ``scale`` conversations (about 8 turns each, every
Nexus layout and locale), deterministic per seed. Import it from a bench script run as
``python bench/NAME.py`` (``bench/`` is then on ``sys.path``).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

import vaultgen


def filler_vault(out: Path, scale: int, seed: int = 7) -> dict:
    """Write the vault; return its truth (conversations and turns)."""
    return vaultgen.generate(out, scale=scale, seed=seed)
