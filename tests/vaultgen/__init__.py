"""tropegraph's test-vault generator: Obsidian vaults of Nexus AI Chat Importer notes.

    from vaultgen import generate
    truth = generate(out_dir)                 # the planted corpus; returns its ground truth
    generate(out_dir, scale=5000, seed=3)     # 5000 filler conversations for a benchmark

or from a shell: ``python tests/vaultgen --out DIR [--truth T.json] [--scale N] [--seed S]``.
Deterministic for a given pack, seed and options. Tests use it through
``tests/conftest.py::generate_vault`` and the ``planted_source``/``planted_vault`` fixtures;
benchmarks import it from ``bench/``. See ``tests/vaultgen/README.md``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .filler import build_filler
from .planted import build_planted
from .render import write_vault

PACKS = Path(__file__).resolve().parent / "packs"
DEV_PACK = PACKS / "dev.json"

__all__ = ["DEV_PACK", "build_filler", "build_planted", "generate", "load_pack", "write_vault"]


def load_pack(path: Path | None = None) -> dict:
    return json.loads((path or DEV_PACK).read_text(encoding="utf-8"))


def generate(out: Path, *, scale: int | None = None, seed: int | None = None, pack: Path | None = None,
             truth: Path | None = None, tour: bool = True, quirks: bool = True,
             attachments: bool = True) -> dict:
    """Write a vault into ``out`` and return its truth (also written to ``truth`` when given).

    ``scale=N`` writes N filler conversations (truth: conversations and turns only); otherwise the
    planted corpus. ``tour=False`` renders every conversation in its pack style and locale,
    ``quirks=False`` leaves out the file-name/attachment conversations.
    """
    data = load_pack(pack)
    seed = 7 if seed is None else seed
    if scale:
        convs = build_filler(data, scale, seed)
        from .planted import _conv_truth

        result = {"conversations": [_conv_truth(i, c, "filler") for i, c in enumerate(convs)]}
    else:
        convs, result = build_planted(data, seed, tour=tour, quirks=quirks, attachments=attachments)
    paths = write_vault(convs, Path(out))
    for conv, path in zip(result["conversations"], paths, strict=True):
        conv["path"] = path
    if truth is not None:
        Path(truth).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return result
