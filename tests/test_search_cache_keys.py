"""Per-index caches of the search side are keyed by the database file, not by the connection:
a closed connection's id() is reused by the next one, which may be another index (a stale entry
of one index was served for another in tests)."""
from __future__ import annotations

import gc
import sqlite3

from queries import search


def _index(path, script: int, n: int) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE passages (id INTEGER PRIMARY KEY, script INTEGER NOT NULL)")
    db.executemany("INSERT INTO passages (id, script) VALUES (?, ?)", [(i, script) for i in range(1, n + 1)])
    db.commit()
    db.close()


def test_script_counts_of_two_indexes_never_mix(tmp_path):
    cyrillic, latin = tmp_path / "ru.db", tmp_path / "en.db"
    _index(cyrillic, 1, 5)
    _index(latin, 2, 5)  # same count and same last id: only the file tells them apart
    search._SCRIPT_COUNTS.clear()
    seen_ids = set()
    for _ in range(20):  # try to make the second connection reuse the first one's id()
        a = sqlite3.connect(cyrillic)
        assert search._script_counts(a, 5) == {1: 5}
        seen_ids.add(id(a))
        a.close()
        del a
        gc.collect()
        b = sqlite3.connect(latin)
        reused = id(b) in seen_ids
        assert search._script_counts(b, 5) == {2: 5}
        b.close()
        del b
        gc.collect()
        if reused:
            break
    assert search._db_key(sqlite3.connect(":memory:")).isdigit()
