"""The index's vocabulary embedded word by word, so search can translate query words across scripts.

An English question over Russian notes shares no word with its answer, so the keyword leg of
hybrid search finds nothing (or stray English words). Classic cross-language retrieval with an
induced lexicon: every frequent lemma of the index (the FTS table's own vocabulary, per script)
is embedded once as a short query text; at search time a query word is mapped to the nearest
lemmas of the other script by cosine (``queries.search.translate_query``), and those join the
keyword query. No translation model: multilingual-e5 puts «синхронизация» next to "sync".

Vectors live in ``term_vectors`` (model, lemma, script, passages holding it when embedded, vector), a cache table of the index made
on first use: it is filled after the passages are embedded, in committed batches, so a kill loses
at most one batch and the next run embeds only the lemmas still missing. A lemma that leaves the
vault keeps its row (harmless: a translation that matches no passage adds nothing).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable

from indexer import textproc
from indexer.passages import CYRILLIC, LATIN, script_of

#: The most frequent lemmas (by passages holding them) embedded per script: a lemma below them is
#: too rare to matter much as a translation (cost: ~2-4 ms of embedding per lemma, once).
LEXICON_TERMS = 20_000
#: Only lemmas in at least this many passages. 1: the word that answers a question is often in
#: one passage only (dev chat needles: MRR 0.88 with 2, 0.92 with 1).
LEXICON_MIN_DF = 1
#: Lemmas embedded per committed batch.
LEXICON_BATCH = 256

#: (rowid table: readers key their cached copy on ``max(id)``, free to read; rows are only added)
TABLE = """CREATE TABLE IF NOT EXISTS term_vectors (
    id INTEGER PRIMARY KEY, model TEXT NOT NULL, term TEXT NOT NULL, script INTEGER NOT NULL,
    doc INTEGER NOT NULL, vector BLOB NOT NULL, UNIQUE (model, term))"""


def is_term(lemma: str) -> bool:
    """A lemma worth translating: letters only, two or more, not a function word."""
    return len(lemma) >= 2 and lemma.isalpha() and not textproc.is_stop(lemma)


def vocabulary(db: sqlite3.Connection, per_script: int = LEXICON_TERMS) -> dict[int, dict[str, int]]:
    """``script -> {lemma: passages holding it}`` of the index, most frequent first (``per_script``
    at most each)."""
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.lexicon_vocab USING fts5vocab(main, passage_fts, row)")
    out: dict[int, dict[str, int]] = {CYRILLIC: {}, LATIN: {}}
    rows = db.execute("SELECT term, doc FROM temp.lexicon_vocab WHERE doc >= ? ORDER BY doc DESC, term", (LEXICON_MIN_DF,))
    for term, doc in rows:
        if not is_term(term):
            continue
        terms = out.get(script_of(term))
        if terms is not None and len(terms) < per_script:
            terms[term] = doc
    return out


def update_lexicon(
    db: sqlite3.Connection,
    embed: Callable[[list[str]], object],
    model: str,
    *,
    progress: Callable[[int, int], None] | None = None,
    limit: int | None = None,
) -> int:
    """Embed the index's frequent lemmas that ``term_vectors`` lacks for ``model``; return how many.

    ``embed`` is the index model's query embedder (lemmas are compared with query words). Each
    batch is one transaction; nothing is held open while embedding. ``limit``: at most this many,
    the most frequent first (the watcher embeds its lexicon a slice at a time between bursts).
    """
    import numpy as np

    db.execute(TABLE)
    if db.in_transaction:
        db.execute("COMMIT")
    vocab = vocabulary(db)
    have = {t for (t,) in db.execute("SELECT term FROM term_vectors WHERE model = ?", (model,))}
    todo = [(t, s, doc) for s, terms in vocab.items() for t, doc in terms.items() if t not in have]
    if limit is not None:
        todo = sorted(todo, key=lambda x: -x[2])[:limit]
    if progress:
        progress(0, len(todo))
    done = 0
    for i in range(0, len(todo), LEXICON_BATCH):
        part = todo[i : i + LEXICON_BATCH]
        vecs = np.asarray(embed([t for t, _, _ in part]), dtype="<f4")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO term_vectors (model, term, script, doc, vector) VALUES (?, ?, ?, ?, ?)",
                [(model, t, s, doc, v.tobytes()) for (t, s, doc), v in zip(part, vecs, strict=True)],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        done += len(part)
        if progress:
            progress(done, len(todo))
    return done
