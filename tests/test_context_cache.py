"""The disposable contexts.db cache: vectors and lemmas round-trip, scoped by model/version, and
any file or folder it cannot use is a cache miss, never an error."""
from __future__ import annotations

import sqlite3

import numpy as np

from queries.contexts import CACHE_NAME, ContextCache, LemmaCache


def test_vectors_round_trip_per_model_and_embed_only_the_missing(tmp_path):
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    cache = ContextCache(tmp_path, "m1")
    first = cache.cached(["aa", "bbb", "aa"], embed)
    assert first.tolist() == [[2.0, 1.0], [3.0, 1.0], [2.0, 1.0]] and calls == [["aa", "bbb"]]
    again = cache.cached(["bbb", "c"], embed)
    assert again.tolist() == [[3.0, 1.0], [1.0, 1.0]] and calls[-1] == ["c"]
    ContextCache(tmp_path, "m2").cached(["aa"], embed)
    assert calls[-1] == ["aa"]  # another model's vectors are not reused


def test_lemmas_round_trip_per_version_with_none(tmp_path):
    LemmaCache(tmp_path, "v1").put({"карты": "карта", "и": None})
    assert LemmaCache(tmp_path, "v1").get(["карты", "и", "мост"]) == {"карты": "карта", "и": None}
    assert LemmaCache(tmp_path, "v2").get(["карты"]) == {}


def test_an_older_file_without_the_lemma_table_is_a_miss(tmp_path):
    ContextCache(tmp_path, "m").put({"h": np.ones(2, dtype=np.float32)})
    assert LemmaCache(tmp_path, "v").get(["слово"]) == {}


def test_a_damaged_file_is_a_miss_and_writes_are_dropped(tmp_path):
    (tmp_path / CACHE_NAME).write_bytes(b"not a database at all" * 100)
    cache = ContextCache(tmp_path, "m")
    assert cache.get(["h"]) == {}
    cache.put({"h": np.ones(2, dtype=np.float32)})  # must not raise
    LemmaCache(tmp_path, "v").put({"a": "a"})
    assert LemmaCache(tmp_path, "v").get(["a"]) == {}


def test_many_keys_are_read_in_batches(tmp_path):
    words = {f"w{i}": f"l{i}" for i in range(1234)}
    LemmaCache(tmp_path, "v").put(words)
    assert LemmaCache(tmp_path, "v").get(list(words)) == words
    assert sqlite3.connect(tmp_path / CACHE_NAME).execute("SELECT count(*) FROM content_lemmas").fetchone()[0] == 1234
