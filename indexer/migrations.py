"""Numbered schema migrations, applied in order on open, each in one transaction with its record.

SQLite is the source of truth; FAISS is a cache rebuilt from ``vectors``.

Design notes (why the tables look like this):
- ``vectors`` is content-addressed: one row per (model, passage-text hash). A renamed or moved
  note, a re-import that appends turns, or the same sentence in two notes never re-embeds.
  FAISS ids are ``vectors.id``.
- ``turns`` are keyed by (conversation_id, uid); plain notes get one pseudo-conversation
  ``note:<path>`` whose "turns" are the note's sections with role ``note``.
- ``passages`` split a turn into model-window-sized pieces; ``passage_fts`` holds their
  lemmatised text for keyword search (rowid = passages.id).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Run several statements inside the caller's transaction (``executescript`` would commit)."""
    stmt = ""
    for line in script.splitlines(keepends=True):
        stmt += line
        if sqlite3.complete_statement(stmt):
            db.execute(stmt)
            stmt = ""
    if stmt.strip():
        raise ValueError(f"incomplete SQL statement: {stmt.strip()[:80]}")


def m001_core(db: sqlite3.Connection) -> None:
    run_script(db, 
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT
        );
        CREATE TABLE notes (
            id          INTEGER PRIMARY KEY,
            path        TEXT NOT NULL UNIQUE,      -- vault-relative POSIX path
            size        INTEGER NOT NULL,
            mtime_ns    INTEGER NOT NULL,
            sha256      TEXT NOT NULL,            -- of the raw bytes
            kind        TEXT NOT NULL,            -- vault_schema NoteKind
            title       TEXT NOT NULL,
            conversation_id TEXT,
            frontmatter TEXT NOT NULL DEFAULT '{}', -- JSON
            aliases     TEXT NOT NULL DEFAULT '[]', -- JSON list
            warnings    TEXT NOT NULL DEFAULT '[]', -- JSON list of ParseWarning dicts
            indexed_at  REAL NOT NULL
        );
        CREATE INDEX notes_sha ON notes(sha256);
        CREATE TABLE conversations (
            id             TEXT PRIMARY KEY,       -- conversation_id, or 'note:<path>' for plain notes
            note_id        INTEGER NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
            title          TEXT NOT NULL,
            provider       TEXT,
            plugin_version TEXT,
            created        TEXT,
            updated        TEXT,
            url            TEXT
        );
        CREATE INDEX conversations_note ON conversations(note_id);
        CREATE TABLE turns (
            id              INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            uid             TEXT NOT NULL,
            note_id         INTEGER NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
            position        INTEGER NOT NULL,
            role            TEXT NOT NULL,         -- user | assistant | note
            model           TEXT,
            time            TEXT,                  -- ISO 8601 local, no offset
            text            TEXT NOT NULL,
            text_hash       TEXT NOT NULL,
            uid_derived     INTEGER NOT NULL DEFAULT 0,
            UNIQUE (conversation_id, uid)
        );
        CREATE INDEX turns_note ON turns(note_id);
        CREATE INDEX turns_time ON turns(time);
        CREATE TABLE passages (
            id       INTEGER PRIMARY KEY,
            turn_id  INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
            seq      INTEGER NOT NULL,
            start    INTEGER NOT NULL,             -- char offset in turns.text
            text     TEXT NOT NULL,
            hash     TEXT NOT NULL,                -- sha256 of the embedded text
            UNIQUE (turn_id, seq)
        );
        CREATE INDEX passages_hash ON passages(hash);
        CREATE TABLE vectors (
            id      INTEGER PRIMARY KEY AUTOINCREMENT, -- = FAISS id; never reused, so FAISS staleness is detectable
            model   TEXT NOT NULL,                 -- engine/model id that made it
            hash    TEXT NOT NULL,
            vector  BLOB NOT NULL,                 -- little-endian float32, L2-normalised
            UNIQUE (model, hash)
        );
        CREATE VIRTUAL TABLE passage_fts USING fts5(lemmas, tokenize = 'unicode61 remove_diacritics 2');
        CREATE TRIGGER passages_fts_delete AFTER DELETE ON passages BEGIN
            DELETE FROM passage_fts WHERE rowid = old.id;
        END;
        CREATE TABLE links (
            note_id  INTEGER NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
            target   TEXT NOT NULL,
            heading  TEXT,
            block    TEXT,
            alias    TEXT,
            embed    INTEGER NOT NULL DEFAULT 0,
            kind     TEXT NOT NULL DEFAULT 'wikilink',
            line     INTEGER
        );
        CREATE INDEX links_note ON links(note_id);
        CREATE INDEX links_target ON links(target);
        CREATE TABLE tags (
            note_id  INTEGER NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
            name     TEXT NOT NULL,                -- casefolded, without '#'
            source   TEXT NOT NULL,
            line     INTEGER
        );
        CREATE INDEX tags_name ON tags(name);
        CREATE INDEX tags_note ON tags(note_id);
        """
    )


def m002_metaphors(db: sqlite3.Connection) -> None:
    """Metaphor engine (issue #6): candidate occurrences, per-key stats, groups, cached phrase vectors.

    Occurrences cascade with their turn; a trigger records the key of every deleted occurrence
    in ``metaphor_dirty`` in the same transaction, so a kill between a batch and the metaphor
    hook loses nothing (the next update picks the dirty keys and unprocessed turns up).
    """
    run_script(db,
        """
        CREATE TABLE metaphor_occurrences (
            id           INTEGER PRIMARY KEY,
            turn_id      INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
            key          TEXT NOT NULL,            -- lemma key: 'карта смысл', 'map of mean'
            head         TEXT NOT NULL,
            dep          TEXT NOT NULL,
            construction TEXT NOT NULL,            -- gen | adj | prep | of
            lang         TEXT NOT NULL,
            surface      TEXT NOT NULL,
            label        TEXT NOT NULL,
            sentence     TEXT NOT NULL,
            sent_norm    TEXT NOT NULL,            -- lower-cased words: repeated sentences count once
            start        INTEGER NOT NULL,         -- char span of surface in turns.text
            end          INTEGER NOT NULL
        );
        CREATE INDEX metaphor_occ_key ON metaphor_occurrences(key);
        CREATE INDEX metaphor_occ_turn ON metaphor_occurrences(turn_id);
        CREATE TABLE metaphor_done (
            turn_id   INTEGER PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
            text_hash TEXT NOT NULL
        );
        CREATE TABLE metaphor_dirty (key TEXT PRIMARY KEY);
        CREATE TRIGGER metaphor_occ_deleted AFTER DELETE ON metaphor_occurrences BEGIN
            INSERT OR IGNORE INTO metaphor_dirty (key) VALUES (old.key);
        END;
        CREATE TABLE metaphor_keys (
            key            TEXT PRIMARY KEY,
            label          TEXT NOT NULL,
            lang           TEXT NOT NULL,
            head           TEXT NOT NULL,
            dep            TEXT NOT NULL,
            construction   TEXT NOT NULL,
            uses           INTEGER NOT NULL,
            sentences      INTEGER NOT NULL,
            conversations  INTEGER NOT NULL,
            months         INTEGER NOT NULL,
            fresh_conversations INTEGER NOT NULL,  -- counted over first uses of distinct sentences
            fresh_months   INTEGER NOT NULL,
            user_uses      INTEGER NOT NULL,
            assistant_uses INTEGER NOT NULL,
            first_time     TEXT,
            first_role     TEXT,
            first_turn_id  INTEGER,
            last_time      TEXT,
            technical      REAL NOT NULL,
            pair_sim       REAL,
            score          REAL NOT NULL
        );
        CREATE TABLE metaphor_vectors (
            model  TEXT NOT NULL,
            text   TEXT NOT NULL,
            vector BLOB NOT NULL,                  -- float32, L2-normalised, embed_queries()
            PRIMARY KEY (model, text)
        );
        CREATE TABLE metaphors (
            id      TEXT PRIMARY KEY,              -- stable: hash of the label key
            label   TEXT NOT NULL,
            score   REAL NOT NULL,
            status  TEXT NOT NULL,                 -- auto | tracked | rejected
            curated INTEGER NOT NULL
        );
        CREATE TABLE metaphor_members (
            key         TEXT PRIMARY KEY,
            metaphor_id TEXT NOT NULL,
            source      TEXT NOT NULL               -- lemma | embedding | curation
        );
        CREATE INDEX metaphor_members_m ON metaphor_members(metaphor_id);
        """
    )


#: Ordered list of (name, function). Append only; never edit an applied migration once released.
def m003_passage_lookup(db: sqlite3.Connection) -> None:
    """Map vector hashes to turns from the index alone (search reads no passage rows).

    Semantic search turns each FAISS hit (a vector, i.e. a passage hash) into its passages and
    turns; with ``turn_id`` in the index that lookup never touches the wide passage rows
    (measured at 175k passages: 3.8 -> 1.8 ms per query). It supersedes ``passages_hash``.
    """
    run_script(db,
        """
        CREATE INDEX passages_hash_turn ON passages(hash, turn_id);
        DROP INDEX passages_hash;
        """
    )


def m004_derived_state(db: sqlite3.Connection) -> None:
    """Derived data that is behind the turns (issue #17): see ``indexer.derived``.

    Batches bump ``meta.turns_generation`` in their own transaction; a derived step records the
    generation it caught up with here, in the transaction that writes its results. An index
    from before this migration starts one generation ahead of every step, so its next run
    checks the metaphor tables (a kill used to leave them stale for good).
    """
    run_script(db,
        """
        CREATE TABLE derived_state (
            name       TEXT PRIMARY KEY,
            generation INTEGER NOT NULL,
            done_at    REAL
        );
        INSERT INTO meta (key, value) SELECT 'turns_generation', '1' WHERE EXISTS (SELECT 1 FROM turns)
            ON CONFLICT(key) DO NOTHING;
        """
    )


def m005_embed_queue(db: sqlite3.Connection) -> None:
    """Embedding is a later, resumable phase of indexing: the queue of passages to embed.

    A batch of notes commits its passages, FTS rows and their queue entries in one transaction
    (keyword-searchable at once); the embedding phase then takes queue entries in order, and
    commits their vectors and removes them from the queue in one transaction. Invariant: every
    passage hash has a vector of the index's model or is queued. Passages an older index left
    without a vector (an interrupted model switch) are queued here.
    """
    run_script(db,
        """
        CREATE TABLE embed_queue (
            id   INTEGER PRIMARY KEY,             -- queue order: first indexed, first embedded
            hash TEXT NOT NULL UNIQUE             -- passages.hash without a vector yet
        );
        INSERT OR IGNORE INTO embed_queue (hash)
            SELECT p.hash FROM passages p
            WHERE NOT EXISTS (
                SELECT 1 FROM vectors v
                WHERE v.hash = p.hash AND v.model = (SELECT value FROM meta WHERE key = 'model')
            )
            ORDER BY p.id;
        """
    )


def m006_partial_turns(db: sqlite3.Connection) -> None:
    """A huge turn's passages are committed a slice at a time (issue #17): how far one got.

    While a turn is part-written its note keeps ``size = -1`` and ``sha256 = ''`` (so the next
    scan re-reads it) and the turn ``text_hash = ''``; this row says up to which character of
    the text (a section boundary) passages are committed, for text of this sha256. A later run
    with the same text keeps those passages and goes on from there.
    """
    run_script(db,
        """
        CREATE TABLE partial_turns (
            turn_id    INTEGER PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
            text_hash  TEXT NOT NULL,             -- sha256 of the whole turn text
            done_chars INTEGER NOT NULL           -- passages committed for text[:done_chars]
        );
        """
    )


def m007_figurative(db: sqlite3.Connection) -> None:
    """Per-use figurativeness and incrementally kept per-key counts (issue #11).

    The metaphor tables are derived data, so they are rebuilt rather than altered: the step is
    marked behind (``indexer.derived``), so the next ``index``/``watch`` re-extracts every turn even
    with no change in the vault (``metaphor_done`` is emptied; cached word/phrase vectors are kept).

    - ``metaphor_occurrences`` gains ``figurative`` (the model's 0..1 for this use in its
      sentence) and copies of its turn's ``conversation_id``, ``role`` and ``time``, so a key's
      stats never need a join with ``turns`` (and survive the cascade that deletes the turn).
    - ``metaphor_counts`` is kept by triggers on every insert/delete of an occurrence: per key,
      how many uses each distinct sentence, conversation, month, turn (by role), surface and label
      has, plus the summed figurativeness of each sentence. A key's stats are then a few
      index lookups, however often it recurs (the watcher's hook used to re-read every
      occurrence of every key a batch touched: 0.2-1.4 s per batch at 100k turns).
    - ``metaphor_figurative`` caches the model's score per (model, candidate-in-sentence hash):
      chats repeat and quote sentences, and ``index --full`` rescored everything.
    - ``metaphor_edges`` records why two keys were grouped (for ``metaphors explain``).
    """
    run_script(db,
        """
        DROP TRIGGER IF EXISTS metaphor_occ_deleted;
        DROP TABLE metaphor_occurrences;
        DROP TABLE metaphor_keys;
        DROP TABLE metaphors;
        DROP TABLE metaphor_members;
        DELETE FROM metaphor_done;
        DELETE FROM metaphor_dirty;
        DELETE FROM meta WHERE key IN ('metaphors_tracked', 'metaphors_curation');
        DELETE FROM derived_state WHERE name = 'metaphors';
        INSERT INTO meta (key, value) SELECT 'turns_generation', '1' WHERE EXISTS (SELECT 1 FROM turns)
            ON CONFLICT(key) DO NOTHING;
        CREATE TABLE metaphor_occurrences (
            id              INTEGER PRIMARY KEY,
            turn_id         INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
            key             TEXT NOT NULL,
            head            TEXT NOT NULL,
            dep             TEXT NOT NULL,
            construction    TEXT NOT NULL,     -- gen | adj | prep | of | nn | tracked
            lang            TEXT NOT NULL,
            surface         TEXT NOT NULL,
            variant         TEXT NOT NULL,     -- surface lower-cased (SQLite's lower() is ASCII-only)
            label           TEXT NOT NULL,
            sentence        TEXT NOT NULL,
            sent_norm       TEXT NOT NULL,
            start           INTEGER NOT NULL,
            end             INTEGER NOT NULL,
            conversation_id TEXT NOT NULL,     -- copied from the turn
            role            TEXT NOT NULL,
            time            TEXT,
            figurative      REAL NOT NULL      -- 0..1: this use in its sentence
        );
        CREATE INDEX metaphor_occ_key_time ON metaphor_occurrences(key, time, turn_id, start);
        CREATE INDEX metaphor_occ_turn ON metaphor_occurrences(turn_id);
        CREATE TABLE metaphor_counts (
            key   TEXT NOT NULL,
            kind  TEXT NOT NULL,               -- sent | conv | month | turn:<role> | surface | label
            value TEXT NOT NULL,
            n     INTEGER NOT NULL,            -- uses with this value
            fig   INTEGER NOT NULL DEFAULT 0,  -- sum of figurative x 10000 (kind sent)
            PRIMARY KEY (key, kind, value)
        ) WITHOUT ROWID;
        CREATE TRIGGER metaphor_occ_added AFTER INSERT ON metaphor_occurrences BEGIN
            INSERT OR IGNORE INTO metaphor_dirty (key) VALUES (new.key);
            INSERT INTO metaphor_counts (key, kind, value, n, fig) VALUES
                (new.key, 'sent', new.sent_norm, 1, CAST(round(new.figurative * 10000) AS INTEGER)),
                (new.key, 'conv', new.conversation_id, 1, 0),
                (new.key, 'turn:' || new.role, CAST(new.turn_id AS TEXT), 1, 0),
                (new.key, 'surface', new.variant, 1, 0),
                (new.key, 'label', new.label, 1, 0),
                (new.key, 'month', coalesce(substr(new.time, 1, 7), ''), 1, 0)
            ON CONFLICT (key, kind, value) DO UPDATE SET n = n + 1, fig = fig + excluded.fig;
        END;
        CREATE TRIGGER metaphor_occ_removed AFTER DELETE ON metaphor_occurrences BEGIN
            INSERT OR IGNORE INTO metaphor_dirty (key) VALUES (old.key);
            UPDATE metaphor_counts SET n = n - 1, fig = fig - CAST(round(old.figurative * 10000) AS INTEGER)
                WHERE key = old.key AND kind = 'sent' AND value = old.sent_norm;
            UPDATE metaphor_counts SET n = n - 1 WHERE key = old.key AND kind = 'conv' AND value = old.conversation_id;
            UPDATE metaphor_counts SET n = n - 1
                WHERE key = old.key AND kind = 'turn:' || old.role AND value = CAST(old.turn_id AS TEXT);
            UPDATE metaphor_counts SET n = n - 1 WHERE key = old.key AND kind = 'surface' AND value = old.variant;
            UPDATE metaphor_counts SET n = n - 1 WHERE key = old.key AND kind = 'label' AND value = old.label;
            UPDATE metaphor_counts SET n = n - 1
                WHERE key = old.key AND kind = 'month' AND value = coalesce(substr(old.time, 1, 7), '');
            DELETE FROM metaphor_counts WHERE key = old.key AND kind = 'sent' AND value = old.sent_norm AND n <= 0;
            DELETE FROM metaphor_counts WHERE key = old.key AND kind = 'conv' AND value = old.conversation_id AND n <= 0;
            DELETE FROM metaphor_counts
                WHERE key = old.key AND kind = 'turn:' || old.role AND value = CAST(old.turn_id AS TEXT) AND n <= 0;
            DELETE FROM metaphor_counts WHERE key = old.key AND kind = 'surface' AND value = old.variant AND n <= 0;
            DELETE FROM metaphor_counts WHERE key = old.key AND kind = 'label' AND value = old.label AND n <= 0;
            DELETE FROM metaphor_counts
                WHERE key = old.key AND kind = 'month' AND value = coalesce(substr(old.time, 1, 7), '') AND n <= 0;
        END;
        CREATE TABLE metaphor_keys (
            key            TEXT PRIMARY KEY,
            label          TEXT NOT NULL,
            lang           TEXT NOT NULL,
            head           TEXT NOT NULL,
            dep            TEXT NOT NULL,
            construction   TEXT NOT NULL,
            uses           INTEGER NOT NULL,   -- turns that use it (a turn repeating it is one use)
            sentences      INTEGER NOT NULL,   -- distinct sentences (a quoted sentence counts once)
            conversations  INTEGER NOT NULL,
            months         INTEGER NOT NULL,
            user_uses      INTEGER NOT NULL,
            assistant_uses INTEGER NOT NULL,
            note_uses      INTEGER NOT NULL,
            first_time     TEXT,
            first_role     TEXT,
            first_turn_id  INTEGER,
            last_time      TEXT,
            model_figurative REAL NOT NULL,    -- mean per distinct sentence, as the model scored it
            figurative     REAL NOT NULL,      -- after the user's stoplist/technical overrides
            override       TEXT,               -- NULL | stoplist | technical
            recurrence     REAL NOT NULL,
            score          REAL NOT NULL       -- figurative x recurrence
        );
        CREATE TABLE metaphors (
            id             TEXT PRIMARY KEY,
            label          TEXT NOT NULL,
            status         TEXT NOT NULL,      -- auto | tracked | rejected
            curated        INTEGER NOT NULL,
            figurative     REAL NOT NULL,
            recurrence     REAL NOT NULL,
            score          REAL NOT NULL,
            uses           INTEGER NOT NULL,
            sentences      INTEGER NOT NULL,
            conversations  INTEGER NOT NULL,
            months         INTEGER NOT NULL,
            user_uses      INTEGER NOT NULL,
            assistant_uses INTEGER NOT NULL,
            note_uses      INTEGER NOT NULL,
            first_time     TEXT,
            first_role     TEXT,
            last_time      TEXT,
            languages      TEXT NOT NULL       -- 'en ru'
        );
        CREATE INDEX metaphors_score ON metaphors(score DESC, id);
        CREATE TABLE metaphor_members (
            key         TEXT PRIMARY KEY,
            metaphor_id TEXT NOT NULL,
            source      TEXT NOT NULL          -- lemma | embedding | curation
        );
        CREATE INDEX metaphor_members_m ON metaphor_members(metaphor_id);
        CREATE TABLE metaphor_edges (
            a      TEXT NOT NULL,
            b      TEXT NOT NULL,
            kind   TEXT NOT NULL,              -- synonym | translation | curation
            detail TEXT NOT NULL,              -- JSON: the cosines that decided it
            PRIMARY KEY (a, b)
        ) WITHOUT ROWID;
        CREATE TABLE metaphor_figurative (
            model TEXT NOT NULL,
            hash  TEXT NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (model, hash)
        ) WITHOUT ROWID;
        """
    )


def m008_conversation_utc_offset(db: sqlite3.Connection) -> None:
    """Conversation times made comparable with turn times: ``conversations.created``/``updated`` are
    now local (they were UTC for ISO frontmatter) and ``utc_offset`` (minutes east of UTC, when the
    note shows it) is kept. Conversation notes are marked for one re-read (parsing only: passages
    are content-addressed, so nothing is re-embedded) to fill both."""
    run_script(db,
        """
        ALTER TABLE conversations ADD COLUMN utc_offset INTEGER;
        UPDATE notes SET mtime_ns = 0, sha256 = '' WHERE kind = 'conversation';
        """
    )


def m009_turn_uid(db: sqlite3.Connection) -> None:
    """Find a turn by its UID alone (``get_turn``/``similar`` with a UID from a search result).

    ``UNIQUE (conversation_id, uid)`` serves only lookups that also name the conversation; a bare
    UID scanned every turn (measured: 8.5 ms per lookup at 16k turns, linear in the vault).
    """
    run_script(db, "CREATE INDEX turns_uid ON turns(uid);")


def m010_passage_kinds(db: sqlite3.Connection) -> None:
    """Passages of a turn are its body text (kind 0) or a *head*: a note's title, aliases and
    description (1), a section's heading path (2), a conversation's title (3); and each records
    its script (0 none, 1 Cyrillic, 2 Latin; see ``indexer.passages``). Existing passages are body
    text, their script computed here; the next index run re-cuts every note
    (``indexer.pipeline.needs_rechunk``). The vector -> turn lookup index now covers kind and
    script too, so semantic search still reads no passage rows."""
    from indexer.passages import script_of

    run_script(db,
        """
        ALTER TABLE passages ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE passages ADD COLUMN script INTEGER NOT NULL DEFAULT 0;
        """
    )
    rows = db.execute("SELECT id, text FROM passages").fetchall()
    db.executemany("UPDATE passages SET script = ? WHERE id = ?", [(script_of(t), i) for i, t in rows])
    run_script(db,
        """
        CREATE INDEX passages_lookup ON passages(hash, turn_id, kind, script);
        DROP INDEX passages_hash_turn;
        """
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("m001_core", m001_core),
    ("m002_metaphors", m002_metaphors),
    ("m003_passage_lookup", m003_passage_lookup),
    ("m004_derived_state", m004_derived_state),
    ("m005_embed_queue", m005_embed_queue),
    ("m006_partial_turns", m006_partial_turns),
    ("m007_figurative", m007_figurative),
    ("m008_conversation_utc_offset", m008_conversation_utc_offset),
    ("m009_turn_uid", m009_turn_uid),
    ("m010_passage_kinds", m010_passage_kinds),
]


def apply_migrations(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded in ``_migrations``; return the names applied."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            fn(db)
            db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, strftime('%s','now'))", (name,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def schema_version(db: sqlite3.Connection) -> int:
    """Number of migrations applied."""
    return db.execute("SELECT count(*) FROM _migrations").fetchone()[0]
