"""Huge notes (issue #17): index time and peak RSS for a 30 MB note of unique text and for
10,000-deep nested blockquotes, printed as figures.

    python bench/huge_note_bench.py [--mb 30] [--notes-seconds 300] [--embed-seconds 60] [--metaphors]
                                    [--case text|quotes|both]

For each case a vault holding that one note is indexed with the default engine, in-process:

- time to the first committed slice (target: committed progress within 60 s) and the number of
  commits: a huge turn is committed a slice of passages at a time (``indexer.pipeline``);
- the notes phase (the note parsed, chunked, lemmatised into FTS: keyword-searchable), stopped
  after ``--notes-seconds`` at a mid-note commit if it runs longer (then the passages committed so
  far, their rate, and the time the whole note would take at that rate);
- the embedding phase for ``--embed-seconds`` at most (166k passages take far longer): the
  vectors committed, passages/s, and the time the whole note would take at that rate;
- peak RSS of the process (target <= 1 GB; measured per case in a fresh subprocess).

The metaphor hook is left out unless ``--metaphors``: on made-up unique words it extracts
thousands of candidate phrases and groups each one (minutes per megabyte), which is the metaphor
engine's cost, not the indexer's; the line says so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SYLLABLES = ["ка", "ро", "ми", "на", "то", "ле", "ва", "си", "по", "ру", "ды", "же", "зо", "ба", "гу", "фе", "ли", "мо", "де", "ты"]


def unique_text(mb: float, seed: int = 1) -> str:
    """Paragraphs of made-up Russian-like words: practically every passage is unique."""
    rng = random.Random(seed)
    target = int(mb * 1_000_000)
    paras: list[str] = []
    size = 0
    while size < target:
        words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(40, 90))]
        para = " ".join(words) + "."
        paras.append(para)
        size += len(para.encode("utf-8")) + 2
    return "\n\n".join(paras)


def deep_quotes(depth: int = 10_000, step: int = 50, mb: float = 2.4) -> str:
    """A Nexus turn quoting lines ``step`` levels deeper each time, down to ``depth`` levels,
    repeated to about ``mb`` megabytes (the torture run's file: 2.4 MB)."""
    out: list[str] = []
    size, i = 0, 0
    while size < mb * 1_000_000:
        d = step * (i % (depth // step) + 1)
        out.append(f"> {'>' * d} слово{d} {i}")
        size += len(out[-1]) + 1
        i += 1
    return (
        "---\nnexus: nexus-ai-chat-importer\nprovider: chatgpt\nconversation_id: deep-1\n---\n\n"
        ">[!nexus_user] **User** - 24.07.2025 at 14:45\n> Цитата:\n" + "\n".join(out) + "\n<!-- UID: u-1 -->\n"
    )


class _Stop(Exception):
    pass


def run_case(case: str, mb: float, notes_seconds: float, embed_seconds: float, metaphors: bool) -> dict:
    from indexer import hooks
    from indexer.embed import get_embedder
    from indexer.pipeline import Pipeline, index_vault
    from indexer.store import open_index

    work = Path(tempfile.mkdtemp(prefix="tropegraph-huge-"))
    vault, ix = work / "vault", work / "index"
    vault.mkdir()
    if case == "text":
        (vault / "huge.md").write_text("# Pasted\n\n" + unique_text(mb) + "\n", encoding="utf-8")
    else:
        (vault / "deep.md").write_text(deep_quotes(), encoding="utf-8")
    size = sum(p.stat().st_size for p in vault.iterdir())
    if not metaphors:
        hooks.load_default_hooks()
        hooks.AFTER_BATCH.clear()
        hooks.AFTER_APPLY.clear()
        hooks.load_default_hooks = lambda: None  # type: ignore[assignment]
    commits: list[float] = []
    real_commit = Pipeline._commit

    def commit(self, batch, report) -> None:  # type: ignore[no-untyped-def]
        real_commit(self, batch, report)
        commits.append(time.perf_counter() - start)

    Pipeline._commit = commit  # type: ignore[method-assign]
    os.environ.setdefault("TROPEGRAPH_EMBED_WINDOW", "64")  # vectors committed every 64 passages
    embedder = get_embedder()
    embed_start: list[float] = []

    def notes_progress(done: int, total: int) -> None:  # also called at every mid-note commit
        if time.perf_counter() - start > notes_seconds:
            raise _Stop

    def embed_progress(done: int, total: int) -> None:
        if not embed_start:
            embed_start.append(time.perf_counter())
        elif time.perf_counter() - embed_start[0] > embed_seconds:
            raise _Stop

    with open_index(ix, create=True, notify=lambda m: None) as idx:
        start = time.perf_counter()
        try:
            report = index_vault(vault, idx, embedder, progress=notes_progress, embed_progress=embed_progress)
            stopped = False
        except _Stop:
            report, stopped = None, True
        end = time.perf_counter()
        db = idx.db
        passages = db.execute("SELECT count(*) FROM passages").fetchone()[0]
        distinct = db.execute("SELECT count(DISTINCT hash) FROM passages").fetchone()[0]
        vectors = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        quotes_left = db.execute("SELECT count(*) FROM passages WHERE text LIKE '%>%'").fetchone()[0]
    notes_s = (embed_start[0] - start) if embed_start else (end - start)
    notes_done = bool(embed_start) or not stopped
    embed_s = end - embed_start[0] if embed_start else 0.0
    expected = 0
    if not notes_done:  # how many passages the whole note makes (chunking only: cheap)
        from indexer.pipeline import make_chunker, note_sections, sections
        from vault_schema.parse import load_note

        chunker = make_chunker(embedder)
        note = load_note(vault, next(p.name for p in vault.iterdir()))
        turns = note.conversation.turns if note.conversation else note_sections(note)
        expected = sum(len(chunker.split(t.text[a:b])) for t in turns for a, b in sections(t.text))
    return {
        "expected_passages": expected,
        "case": case, "bytes": size, "notes_done": notes_done, "passages": passages, "distinct": distinct, "commits": len(commits),
        "first_commit_s": commits[0] if commits else None, "notes_s": notes_s, "vectors": vectors,
        "embed_s": embed_s, "stopped": stopped, "quotes_left": quotes_left,
        "complete": report is not None and report.passages_pending == 0,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "metaphors": metaphors, "runtime": getattr(embedder, "runtime", "-"),
    }


def show(r: dict) -> None:
    name = "30 MB unique text" if r["case"] == "text" else "10,000-deep blockquotes"
    print(f"{name}: {r['bytes'] / 1e6:.1f} MB note, {r['passages']} passages ({r['distinct']} distinct)")
    print(
        f"   first slice committed after {r['first_commit_s']:.1f} s (target <= 60 s); "
        f"{r['commits']} commits in the notes phase"
    )
    hook = "" if r["metaphors"] else " (metaphor hook left out: see --metaphors)"
    if r["notes_done"]:
        print(f"   keyword-searchable after {r['notes_s']:.1f} s{hook}")
    else:
        expected = r["expected_passages"]
        rate = r["passages"] / r["notes_s"]
        print(
            f"   stopped after {r['notes_s']:.0f} s with {r['passages']} of ~{expected} passages committed "
            f"({rate:.0f} passages/s): keyword-searchable after about {expected / rate / 60:.0f} min at that rate{hook}"
        )
    if r["vectors"] and r["embed_s"] > 0:
        rate = r["vectors"] / r["embed_s"]
        left = (r["distinct"] - r["vectors"]) / rate if rate else float("nan")
        print(
            f"   embedding ({r['runtime']}): {r['vectors']} vectors committed in {r['embed_s']:.1f} s = {rate:.1f} "
            f"passages/s" + (f"; the rest would take about {left / 60:.0f} min more" if not r["complete"] else
                             "; fully embedded")
        )
    if r["case"] == "quotes":
        print(f"   passages still holding '>': {r['quotes_left']}")
    print(f"   peak RSS {r['rss_mb']:.0f} MB (target <= 1024)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=30.0)
    ap.add_argument("--notes-seconds", type=float, default=300.0)
    ap.add_argument("--embed-seconds", type=float, default=60.0)
    ap.add_argument("--metaphors", action="store_true", help="keep the metaphor hook (very slow on made-up words)")
    ap.add_argument("--case", choices=("text", "quotes", "both"), default="both")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.mb, args.notes_seconds, args.embed_seconds, args.metaphors)))
        return
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for case in ("text", "quotes") if args.case == "both" else (args.case,):
        cmd = [
            sys.executable, __file__, "--one", case, "--mb", str(args.mb),
            "--notes-seconds", str(args.notes_seconds), "--embed-seconds", str(args.embed_seconds),
        ]
        if args.metaphors:
            cmd.append("--metaphors")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        show(json.loads(out.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
