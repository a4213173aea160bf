"""Read API of the metaphor engine: list metaphors, get one with its uses, explain why it is listed.

Reads the tables written by ``indexer.metaphors`` and never writes. Every function takes an open
index (``indexer.store.open_index(..., readonly=True)``) or anything with a ``db`` attribute
holding a ``sqlite3.Connection``.

- :func:`list_metaphors` — ranked summaries (the ``tropegraph metaphors`` list): by default only
  recurring **images** (figurativeness ≥ the model's threshold, 2+ conversations, said at least
  once in a chat turn — not only in plain notes —, or tracked).
- :func:`list_status` — what the default list leaves out and why (for "no recurring images").
- :func:`get_metaphor` — one metaphor by id, label, variant or any phrase of its key.
- :func:`explain_metaphor` — why a metaphor is (not) listed: figurativeness per use and
  overall, recurrence, its keys and why they were grouped.
- :func:`list_candidates` — raw lemma-key candidates (one row per key, before grouping).
- :func:`cooccurrences` — metaphor pairs used in the same conversations.

A **use** is one turn (a message of a conversation, or a section of a plain note: :data:`USE`)
that uses the image; a turn repeating it counts once. The same definition holds in the list, the
timelines and the reports.

Times are ISO 8601 local wall-clock strings as the notes wrote them (no offset).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from vault_schema.errors import VaultError
from vault_schema.models import TIMES

Role = Literal["user", "assistant"]

#: By default a metaphor must recur: used in at least this many conversations (tracked ones always show).
MIN_CONVERSATIONS = 2
#: The cut-off when the index does not record the model's own (an index built before it).
DEFAULT_THRESHOLD = 0.5
USE = ("a use is one turn (a message of a conversation, or a section of a plain note) that uses the image; "
       "a turn repeating it counts once")
"""What a **use** is, said the same way by every output (list, explain, timelines, reports, graph)."""
#: SQL condition on ``metaphors`` rows: used at least once in a chat turn (by the user or the
#: assistant). Plain notes (documentation, clippings, drafts: role ``note``, one pseudo-conversation
#: per note) add uses to an image, but a phrase found only there is a term of those notes, not an
#: image of the person's conversations («плагин сообщества» in 38 pages of a help vault).
IN_CHATS = "user_uses + assistant_uses > 0"


class MetaphorNotFound(LookupError):
    """No metaphor matches the id or phrase."""


class MetaphorsOutdated(VaultError):
    """The index was built by an older tropegraph: its metaphor tables lack what this one reads."""


@dataclass(frozen=True)
class MetaphorSummary:
    """One metaphor as listed by ``tropegraph metaphors``."""

    id: str
    """Stable id (``m`` + 8 hex), derived from the founding lemma key."""
    label: str
    """Readable name: the most used variant's dictionary form («карта смысла»)."""
    variants: tuple[str, ...]
    """Surface forms seen, most used first («карту смысла», "map of meaning", …)."""
    occurrences: int
    """Uses: turns that use it (see :data:`USE`)."""
    conversations: int
    first_seen: str | None
    first_role: str | None
    last_seen: str | None
    score: float
    """figurativeness × recurrence."""
    curated: bool
    """True when ``tropegraph.toml`` tracks, rejects, merges or splits it."""
    status: str
    """``auto``, ``tracked`` or ``rejected``."""
    keys: tuple[str, ...]
    """Lemma keys grouped into it (``карта смысл``, ``map of mean``)."""
    languages: tuple[str, ...]
    uses_by_role: dict[str, int]
    figurative: float = 0.0
    """Mean figurativeness of its distinct sentences (0..1), after the user's overrides."""
    image: bool = False
    """Judged figurative: ``figurative`` ≥ the model's threshold."""
    recurrence: float = 0.0
    sentences: int = 0
    months: int = 0
    hidden_because: tuple[str, ...] = ()
    """Why the default list leaves it out ("literal 0.20 < 0.46", "one conversation", "one repeated
    sentence", "rejected"); empty when the default list holds it (what ``--all`` marks)."""

    def places(self) -> str:
        """Where it is used, in words: "3 conversations", "4 plain notes" (each plain note counts
        as one conversation), "5 conversations and notes"."""
        return places(self.conversations, self.uses_by_role)

    def first_use(self) -> str:
        """Its first use, in words: "2025-01-05T10:00:00 by user", or "undated in a plain note"."""
        by = "in a plain note" if self.first_role == "note" else f"by {self.first_role or '?'}"
        return f"{self.first_seen or 'undated'} {by}"

    @property
    def in_chats(self) -> bool:
        """Used at least once in a chat turn (not only in plain notes): see :data:`IN_CHATS`."""
        return bool(self.uses_by_role.get("user") or self.uses_by_role.get("assistant"))

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape of the issue, plus ``status``, ``keys``, ``languages``,
        ``uses_by_role``, the ranking figures and ``hidden_because``."""
        return {
            "id": self.id,
            "label": self.label,
            "variants": list(self.variants),
            "occurrences": self.occurrences,
            "conversations": self.conversations,
            "first_seen": self.first_seen,
            "first_role": self.first_role,
            "last_seen": self.last_seen,
            "score": self.score,
            "curated": self.curated,
            "status": self.status,
            "keys": list(self.keys),
            "languages": list(self.languages),
            "uses_by_role": dict(self.uses_by_role),
            "figurative": self.figurative,
            "image": self.image,
            "recurrence": self.recurrence,
            "sentences": self.sentences,
            "months": self.months,
            "hidden_because": list(self.hidden_because),
        }


@dataclass(frozen=True)
class MetaphorOccurrence:
    """One occurrence of a metaphor in one turn (a turn may hold several: one use)."""

    turn_id: int
    uid: str
    conversation_id: str
    conversation_title: str
    note: str
    """Vault-relative path of the note."""
    role: str
    time: str | None
    key: str
    lang: str
    surface: str
    sentence: str
    start: int
    """Char span of ``surface`` in the turn text."""
    end: int
    figurative: float | None = None
    """The model's figurativeness of this occurrence in its sentence (None: a phrase found in
    the text, not an extracted candidate)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class MetaphorDetail:
    """A metaphor with every occurrence, oldest first."""

    summary: MetaphorSummary
    occurrences: tuple[MetaphorOccurrence, ...]

    def to_dict(self) -> dict[str, Any]:
        d = self.summary.to_dict()
        d["uses"] = [o.to_dict() for o in self.occurrences]
        return d


@dataclass(frozen=True)
class Candidate:
    """One lemma key with its recurrence stats (before grouping)."""

    key: str
    label: str
    lang: str
    construction: str
    uses: int
    sentences: int
    conversations: int
    first_seen: str | None
    first_role: str | None
    score: float
    metaphor_id: str | None
    figurative: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def places(conversations: int, uses_by_role: dict[str, int]) -> str:
    """``conversations`` in words, telling plain notes (each one "conversation" of sections) apart."""
    notes = bool(uses_by_role.get("note"))
    chats = bool(uses_by_role.get("user") or uses_by_role.get("assistant"))
    what = ("conversations and notes" if notes and chats else "plain note" if notes else "conversation")
    if what != "conversations and notes" and conversations != 1:
        what += "s"
    return f"{conversations} {what}"


def _phrases(n: int, verb_one: str, verb_many: str) -> str:
    """``1 phrase recurs`` / ``3 phrases recur``: status lines agree in number."""
    return f"{n} phrase {verb_one}" if n == 1 else f"{n} phrases {verb_many}"


def _db(index: Any) -> Any:
    return getattr(index, "db", index)


def has_metaphors(index: Any) -> bool:
    """True when the metaphor tables exist (an index built before the engine has none).

    Raises :class:`MetaphorsOutdated` for tables of an older version (before per-use
    figurativeness), which a writer migrates on its next run.
    """
    db = _db(index)
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'metaphors'").fetchone():
        return False
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'metaphor_counts'").fetchone():
        raise MetaphorsOutdated("this index was built by an older tropegraph; run `tropegraph index` to update "
                                "its metaphors (nothing is re-embedded)")
    return True


def threshold(index: Any) -> float:
    """The figurativeness cut-off of the model that scored this index."""
    row = _db(index).execute("SELECT value FROM meta WHERE key = 'figurative_threshold'").fetchone()
    try:
        return float(row[0]) if row else DEFAULT_THRESHOLD
    except ValueError:
        return DEFAULT_THRESHOLD


def model_id(index: Any) -> str | None:
    row = _db(index).execute("SELECT value FROM meta WHERE key = 'figurative_model'").fetchone()
    return row[0] if row else None


_COLS = ("id, label, status, curated, figurative, recurrence, score, uses, sentences, conversations, months, "
         "user_uses, assistant_uses, note_uses, first_time, first_role, last_time, languages")


def _members(db: Any, ids: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """keys and variants (surfaces, most used first) of each metaphor."""
    keys: dict[str, list[str]] = {m: [] for m in ids}
    surfaces: dict[str, dict[str, int]] = {m: {} for m in ids}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        for mid, key in db.execute(f"SELECT metaphor_id, key FROM metaphor_members WHERE metaphor_id IN ({q}) "
                                   "ORDER BY key", chunk):
            keys[mid].append(key)
        for mid, surface, n in db.execute(
                f"SELECT mm.metaphor_id, c.value, c.n FROM metaphor_members mm JOIN metaphor_counts c "
                f"ON c.key = mm.key AND c.kind = 'surface' WHERE mm.metaphor_id IN ({q})", chunk):
            surfaces[mid][surface] = surfaces[mid].get(surface, 0) + n
    variants = {m: sorted(s, key=lambda v, s=s: (-s[v], v)) for m, s in surfaces.items()}
    return keys, variants


def hidden_because(status: str, figurative: float, conversations: int, sentences: int, cut: float,
                   min_conversations: int = MIN_CONVERSATIONS, in_chats: bool = True) -> tuple[str, ...]:
    """Why the default list leaves a metaphor out, in a few words each (empty: it lists it). The one
    rule behind the list's SQL, ``--all``'s marks, the timeline's note and the explorer's status."""
    if status == "tracked":
        return ()
    out = ["rejected"] if status == "rejected" else []
    if figurative < cut:
        out.append(f"literal {figurative:.2f} < {cut:.2f}")
    if conversations < min_conversations:
        out.append("one conversation")
    elif sentences < min_conversations:
        out.append("one repeated sentence")
    if not in_chats:
        out.append("plain notes only")  # see IN_CHATS
    return tuple(out)


def _summary(row: tuple, keys: list[str], variants: list[str], cut: float,
             hidden: tuple[str, ...] | None = None) -> MetaphorSummary:
    (mid, label, status, curated, fig, rec, score, uses, sentences, convs, months, user, asst, note,
     first, first_role, last, langs) = row
    roles = {r: n for r, n in (("user", user), ("assistant", asst), ("note", note)) if n}
    return MetaphorSummary(
        id=mid, label=label, variants=tuple(variants), occurrences=uses, conversations=convs, first_seen=first,
        first_role=first_role, last_seen=last, score=score, curated=bool(curated), status=status,
        keys=tuple(keys), languages=tuple(langs.split()), uses_by_role=roles, figurative=fig,
        image=fig >= cut, recurrence=rec, sentences=sentences, months=months,
        hidden_because=(hidden_because(status, fig, convs, sentences, cut, in_chats=bool(user or asst))
                        if hidden is None else hidden))


def _by_role(db: Any, ids: list[str], role: str) -> dict[str, tuple]:
    """Stats of each metaphor over ``role``'s uses only (read from the occurrences)."""
    out: dict[str, tuple] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        q = ",".join("?" * len(chunk))
        for mid, uses, convs, first, last in db.execute(
                f"SELECT mm.metaphor_id, count(DISTINCT o.turn_id), count(DISTINCT o.conversation_id), "
                f"min(coalesce(o.time, '~')), max(o.time) FROM metaphor_members mm "
                f"JOIN metaphor_occurrences o ON o.key = mm.key "
                f"WHERE mm.metaphor_id IN ({q}) AND o.role = ? GROUP BY mm.metaphor_id", (*chunk, role)):
            out[mid] = (uses, convs, None if first == "~" else first, last)
    return out


def list_metaphors(index: Any, *, limit: int | None = None, role: Role | None = None,
                   min_conversations: int = MIN_CONVERSATIONS, include_rejected: bool = False,
                   include_literal: bool = False) -> list[MetaphorSummary]:
    """Metaphors by score, best first.

    By default only images: figurativeness ≥ the model's threshold (:func:`threshold`), in at
    least ``min_conversations`` conversations with as many distinct sentences (one sentence pasted
    into ten conversations is not a recurring image) and said at least once in a chat turn
    (:data:`IN_CHATS`) — tracked ones always; ``include_literal`` adds the phrases judged literal
    and those of plain notes only, ``include_rejected`` the rejected ones. ``role`` keeps metaphors that
    role used and counts only its uses (first_seen = that role's first use).
    """
    db = _db(index)
    if not has_metaphors(db):
        return []
    cut = threshold(db)
    where = ["(status = 'tracked' OR min(conversations, sentences) >= ?)"]
    args: list[Any] = [min_conversations]
    if not include_literal:
        where.append(f"(status = 'tracked' OR (figurative >= ? AND {IN_CHATS}))")
        args.append(cut)
    if not include_rejected:
        where.append("status != 'rejected'")
    rows = db.execute(f"SELECT {_COLS} FROM metaphors WHERE {' AND '.join(where)} ORDER BY score DESC, id",
                      args).fetchall()
    # judged on every speaker's uses, as the list's filter is (a --role view counts one speaker's)
    hidden = {r[0]: hidden_because(r[2], r[4], r[9], r[8], cut, in_chats=bool(r[11] or r[12])) for r in rows}
    if role:
        stats = _by_role(db, [r[0] for r in rows], role)
        picked = []
        for r in rows:
            if r[0] not in stats:
                continue
            uses, convs, first, last = stats[r[0]]
            roles = [0, 0, 0]
            roles[("user", "assistant", "note").index(role)] = uses
            picked.append((*r[:7], uses, r[8], convs, r[10], *roles, first, role, last, r[17]))
        rows = picked
    rows = rows[:limit] if limit else rows
    keys, variants = _members(db, [r[0] for r in rows])
    return [_summary(r, keys[r[0]], variants[r[0]], cut, hidden[r[0]]) for r in rows]


@dataclass(frozen=True)
class ListStatus:
    """What the default list shows and leaves out, for a list that is short or empty."""

    images: int
    """Recurring images: what ``tropegraph metaphors`` lists."""
    literal: int
    """Recurring candidates the model judges literal (``--all`` shows them)."""
    single: int
    """Images seen in one conversation only, or in one sentence repeated (``--all`` shows them)."""
    rejected: int
    threshold: float
    model: str | None
    best_literal: tuple[str, float] | None
    """The recurring literal candidate the model found most figurative (label, figurativeness)."""
    candidates: int
    """Lemma keys extracted from the vault."""
    turns: int = 0
    """Turns in the index (0: nothing indexed yet)."""
    notes_only: int = 0
    """Recurring phrases judged figurative but found in plain notes only, never in a chat turn."""
    chat_turns: int | None = None
    """0 when the vault holds no conversation turns (only sections of plain notes), else None: the
    count itself is not needed and would cost a scan of every turn (0.8 s cold at 100k turns)."""

    def message(self, role: str | None = None) -> str:
        """What the default list holds and leaves out, and what to do about it (several lines;
        for an empty list: why it is empty). ``role``: the list was of that speaker's uses only
        (``--role``)."""
        if role and self.images:
            which = "its one recurring image is" if self.images == 1 else f"its {self.images} recurring images are"
            return (f"No recurring image used by the {role} in this vault: {which} the other speaker's. "
                    "`tropegraph metaphors` without --role lists them.")
        if self.turns == 0:
            return "No recurring images: nothing is indexed yet. Run `tropegraph index` (or check --vault)."
        if self.candidates == 0:
            return (f"No recurring images: none of the {self.turns} indexed turns holds a candidate phrase "
                    "(noun + genitive, adjective + noun, noun + preposition + noun, X of Y, noun compounds).")
        if self.images:
            lines = [(f"{self.images} recurring image{'s' if self.images != 1 else ''} in this vault "
                     f"(`tropegraph metaphors` lists {'it' if self.images == 1 else 'them'}).")]
        elif self.chat_turns == 0:
            lines = [("No recurring images: this vault holds no chat conversations, only plain notes "
                     f"({self.turns} sections). Images are phrases that recur in your conversations; terms "
                     "of documentation or notes are not listed.")]
        else:
            lines = ["No recurring images in this vault."]
        if self.literal:
            best = ""
            if self.best_literal:
                label, fig = self.best_literal
                best = f"; the closest, «{label}», scores {fig:.2f}"
            where = "notes" if self.chat_turns == 0 else "conversations"
            lines.append(f"  {_phrases(self.literal, 'recurs', 'recur')} in 2+ {where}, but the figurativeness "
                         f"model judges {'it' if self.literal == 1 else 'them'} literal (an image needs "
                         f"{self.threshold:.2f}{best}).")
        if self.notes_only:
            lines.append(f"  {_phrases(self.notes_only, 'judged figurative recurs', 'judged figurative recur')} "
                         "in plain notes only, never in a "
                         "conversation turn (terms of those notes, not images of your conversations).")
        if self.single:
            lines.append(f"  {_phrases(self.single, 'judged figurative occurs', 'judged figurative occur')} "
                         "in one conversation only, or in one "
                         "repeated sentence (an image must recur in 2+ conversations).")
        if not self.literal and not self.single and not self.notes_only and not self.images:
            lines.append("  No phrase recurs in 2+ conversations yet.")
        lines.append("  See every candidate with `tropegraph metaphors --all`; always list a phrase you consider "
                     'an image with `tropegraph metaphors track "PHRASE"`.')
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "literal": self.literal, "single_conversation": self.single,
                "rejected": self.rejected, "threshold": self.threshold, "model": self.model,
                "best_literal": list(self.best_literal) if self.best_literal else None,
                "candidates": self.candidates, "turns": self.turns, "notes_only": self.notes_only,
                "chat_turns": self.chat_turns}


def list_status(index: Any, *, min_conversations: int = MIN_CONVERSATIONS) -> ListStatus:
    db = _db(index)
    if not has_metaphors(db):
        turns = db.execute("SELECT count(*) FROM turns").fetchone()[0]
        return ListStatus(0, 0, 0, 0, DEFAULT_THRESHOLD, None, None, 0, turns)
    cut = threshold(db)

    def n(sql: str, *args: Any) -> int:
        return db.execute(f"SELECT count(*) FROM metaphors WHERE {sql}", args).fetchone()[0]

    images = n("status != 'rejected' AND (status = 'tracked' OR (min(conversations, sentences) >= ? "
               f"AND figurative >= ? AND {IN_CHATS}))", min_conversations, cut)
    notes_only = n(f"status = 'auto' AND min(conversations, sentences) >= ? AND figurative >= ? AND NOT {IN_CHATS}",
                   min_conversations, cut)
    literal = n("status = 'auto' AND min(conversations, sentences) >= ? AND figurative < ?", min_conversations, cut)
    single = n("status = 'auto' AND min(conversations, sentences) < ? AND figurative >= ?", min_conversations, cut)
    rejected = n("status = 'rejected'")
    best = db.execute("SELECT label, figurative FROM metaphors WHERE status = 'auto' AND "
                      "min(conversations, sentences) >= ? AND figurative < ? ORDER BY figurative DESC, score DESC, id "
                      "LIMIT 1", (min_conversations, cut)).fetchone()
    keys = db.execute("SELECT count(*) FROM metaphor_keys").fetchone()[0]
    turns = db.execute("SELECT count(*) FROM turns").fetchone()[0]
    # EXISTS stops at the first conversation turn: a scan only for a vault of plain notes alone
    chats = None if db.execute("SELECT EXISTS (SELECT 1 FROM turns WHERE role IN ('user', 'assistant'))"
                               ).fetchone()[0] else 0
    return ListStatus(images, literal, single, rejected, cut, model_id(db), tuple(best) if best else None, keys,
                      turns, notes_only, chats)


def find_metaphor(index: Any, ref: str) -> str | None:
    """The id of the metaphor ``ref`` names: an id, a label, a surface variant, or any phrase
    whose lemma key belongs to a metaphor («карту смысла», "map of meaning")."""
    db = _db(index)
    if not has_metaphors(db):
        return None
    ref = ref.strip()
    if not ref:
        return None
    if db.execute("SELECT 1 FROM metaphors WHERE id = ?", (ref,)).fetchone():
        return ref
    row = db.execute("SELECT id FROM metaphors WHERE label IN (?, ?) ORDER BY score DESC, id",
                     (ref, ref.lower())).fetchone()
    if row:
        return row[0]
    from indexer.metaphors.engine import phrase_key  # light: extraction only

    for key in (ref.lower(), phrase_key(ref)):
        row = db.execute("SELECT metaphor_id FROM metaphor_members WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0]
    row = db.execute(
        "SELECT mm.metaphor_id FROM metaphor_counts c JOIN metaphor_members mm ON mm.key = c.key "
        "WHERE c.kind = 'surface' AND c.value = ? LIMIT 1", (ref.lower(),)).fetchone()
    return row[0] if row else None


_OCC = """
    SELECT t.id, t.uid, o.conversation_id, c.title, n.path, o.role, o.time, o.key, o.lang,
           o.surface, o.sentence, o.start, o.end, o.figurative
    FROM metaphor_members mm
    JOIN metaphor_occurrences o ON o.key = mm.key
    JOIN turns t ON t.id = o.turn_id
    JOIN conversations c ON c.id = o.conversation_id
    JOIN notes n ON n.id = t.note_id
    WHERE mm.metaphor_id = ?
    ORDER BY (o.time IS NULL), o.time, o.turn_id, o.start
"""


def _summary_of(db: Any, mid: str) -> MetaphorSummary | None:
    row = db.execute(f"SELECT {_COLS} FROM metaphors WHERE id = ?", (mid,)).fetchone()
    if row is None:
        return None
    keys, variants = _members(db, [mid])
    return _summary(row, keys[mid], variants[mid], threshold(db))


def get_metaphor(index: Any, ref: str) -> MetaphorDetail:
    """One metaphor (by id or phrase, see :func:`find_metaphor`) with all its occurrences.

    Raises :class:`MetaphorNotFound`.
    """
    db = _db(index)
    mid = find_metaphor(db, ref)
    if mid is None:
        raise MetaphorNotFound(f"no metaphor matches {ref!r}; see `tropegraph metaphors` for the list")
    summary = _summary_of(db, mid)
    if summary is None:
        raise MetaphorNotFound(f"metaphor {mid} has no occurrences left; run `tropegraph index`")
    occs = tuple(MetaphorOccurrence(*r) for r in db.execute(_OCC, (mid,)))
    return MetaphorDetail(summary, occs)


def phrase_occurrences(index: Any, phrase: str, *, limit: int = 2000) -> list[MetaphorOccurrence]:
    """Every place the turns' text holds ``phrase`` in any inflection (its lemmas in a row),
    oldest first: a timeline for a phrase the engine does not list («река времени» when «время»
    is not a candidate word, a one-word image, a quote). Found with the keyword index, then
    checked word by word."""
    from indexer.metaphors.engine import find_phrase
    from indexer.textproc import lemmas

    db = _db(index)
    lem = lemmas(phrase)
    if not lem:
        return []
    match = '"' + " ".join(lem).replace('"', '""') + '"'
    turn_ids = sorted({r[0] for r in db.execute(
        "SELECT DISTINCT p.turn_id FROM passage_fts f JOIN passages p ON p.id = f.rowid "
        "WHERE passage_fts MATCH ? LIMIT ?", (match, limit))})
    out = []
    for i in range(0, len(turn_ids), 500):
        chunk = turn_ids[i : i + 500]
        for tid, uid, conv, title, path, role, when, text in db.execute(
                f"SELECT t.id, t.uid, t.conversation_id, c.title, n.path, t.role, t.time, t.text FROM turns t "
                f"JOIN conversations c ON c.id = t.conversation_id JOIN notes n ON n.id = t.note_id "
                f"WHERE t.id IN ({','.join('?' * len(chunk))})", chunk):
            for c in find_phrase(text, phrase):
                out.append(MetaphorOccurrence(tid, uid, conv, title, path, role, when, c.key, c.lang, c.surface,
                                              c.sentence, c.start, c.end, None))
    out.sort(key=lambda o: (o.time is None, o.time or "", o.turn_id, o.start))
    return out


# --- explain -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyExplanation:
    """One lemma key of a metaphor and how it joined the group."""

    key: str
    label: str
    lang: str
    construction: str
    uses: int
    sentences: int
    figurative: float
    """The model's mean over this key's distinct sentences (before any override)."""
    override: str | None
    """``stoplist`` / ``technical`` when the user's ``tropegraph.toml`` marks it literal."""
    source: str
    """``lemma`` (the founding key), ``synonym``, ``translation`` or ``curation``."""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Link:
    """Why two keys of the metaphor are grouped."""

    a: str
    b: str
    kind: str
    detail: dict

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "kind": self.kind, **self.detail}

    @property
    def reason(self) -> str:
        d = self.detail
        if self.kind == "synonym":
            x, y = d.get("words", ["?", "?"])
            return (f"same head, near-synonym complements {x} / {y} (word cosine {d.get('word_cos')}, "
                    f"phrase cosine {d.get('phrase_cos')})")
        if self.kind == "translation":
            h, dep = d.get("head", ["?", "?", "?"]), d.get("dep", ["?", "?", "?"])
            return (f"translation: {h[0]} ↔ {h[1]} ({h[2]}) and {dep[0]} ↔ {dep[1]} ({dep[2]}) are mutual "
                    f"nearest words across the languages; phrase cosine {d.get('phrase_cos')}")
        if "merge" in d:
            return "merged in tropegraph.toml: " + " + ".join(d["merge"])
        return f"alias of tracked «{d.get('track')}» in tropegraph.toml: «{d.get('alias')}»"


@dataclass(frozen=True)
class SentenceScore:
    """A distinct sentence of the metaphor, the model's figurativeness there, and its uses."""

    sentence: str
    figurative: float
    uses: int
    first_time: str | None
    role: str
    conversation_title: str

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Explanation:
    """Why a metaphor is or is not in ``tropegraph metaphors``."""

    summary: MetaphorSummary
    listed: bool
    reasons: tuple[str, ...]
    """Each condition of the default list, met or not, in words."""
    threshold: float
    model: str | None
    sentences: tuple[SentenceScore, ...]
    """Distinct sentences, oldest first: the overall figurativeness is their mean."""
    uses: tuple[MetaphorOccurrence, ...]
    keys: tuple[KeyExplanation, ...]
    links: tuple[Link, ...]
    variants: dict[str, int] = field(default_factory=dict)
    co_occurring: tuple[tuple[str, str, int], ...] = ()
    """``(id, label, conversations)``: the recurring images (the default list, as every "With" list)
    used in the same conversations, most shared first."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "metaphor": self.summary.to_dict(),
            "listed": self.listed,
            "reasons": list(self.reasons),
            "threshold": self.threshold,
            "model": self.model,
            "use": USE,
            "figurative": {"overall": self.summary.figurative,
                           "sentences": [s.to_dict() for s in self.sentences]},
            "recurrence": {"score": self.summary.recurrence, "uses": self.summary.occurrences,
                           "sentences": self.summary.sentences, "conversations": self.summary.conversations,
                           "months": self.summary.months, "uses_by_role": dict(self.summary.uses_by_role),
                           "languages": list(self.summary.languages)},
            "uses": [o.to_dict() for o in self.uses],
            "keys": [k.to_dict() for k in self.keys],
            "links": [lk.to_dict() | {"reason": lk.reason} for lk in self.links],
            "variants": dict(self.variants),
            "co_occurring": [{"id": i, "label": label, "count": n} for i, label, n in self.co_occurring],
        }


def explain_metaphor(index: Any, ref: str, *, min_conversations: int = MIN_CONVERSATIONS) -> Explanation:
    """Why the metaphor ``ref`` (id or phrase) is listed or not. Raises :class:`MetaphorNotFound`."""
    db = _db(index)
    detail = get_metaphor(db, ref)
    s = detail.summary
    cut = threshold(db)
    reasons = []
    if s.status == "rejected":
        reasons.append("rejected in tropegraph.toml: hidden")
    if s.status == "tracked":
        reasons.append("tracked in tropegraph.toml: always listed")
    rows = {r[0]: r for r in db.execute(
        "SELECT k.key, k.label, k.lang, k.construction, k.uses, k.sentences, k.model_figurative, k.override, "
        "mm.source FROM metaphor_members mm JOIN metaphor_keys k ON k.key = mm.key WHERE mm.metaphor_id = ?",
        (s.id,))}
    overrides = sorted({r[7] for r in rows.values() if r[7]})
    if s.image:
        reasons.append(f"figurative: {s.figurative:.2f} ≥ {cut:.2f} (the model's cut-off)")
    else:
        why = f" ({', '.join(overrides)} in tropegraph.toml)" if overrides else ""
        reasons.append(f"judged literal: {s.figurative:.2f} < {cut:.2f}{why}")
    recurring = min(s.conversations, s.sentences) >= min_conversations
    if recurring:
        reasons.append(f"recurring: {s.places()} ≥ {min_conversations}")
    elif s.conversations >= min_conversations:
        reasons.append(f"not recurring: one sentence repeated in {s.conversations} conversations")
    else:
        reasons.append(f"not recurring: {s.conversations} conversation(s) < {min_conversations}")
    if not s.in_chats:
        reasons.append("in plain notes only: never said in a conversation turn")
    listed = s.status == "tracked" or (s.status != "rejected" and s.image and recurring and s.in_chats)
    sentences: dict[str, list[MetaphorOccurrence]] = {}
    from indexer.metaphors.engine import norm_sentence

    for o in detail.occurrences:
        sentences.setdefault(f"{o.key}\x1f{norm_sentence(o.sentence)}", []).append(o)
    scored = tuple(SentenceScore(os_[0].sentence, round(sum(o.figurative for o in os_) / len(os_), 4),
                                 len({o.turn_id for o in os_}), os_[0].time, os_[0].role, os_[0].conversation_title)
                   for os_ in sentences.values())
    keys = tuple(KeyExplanation(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
                 for r in sorted(rows.values(), key=lambda r: (r[8] != "lemma", -r[4], r[0])))
    q = ",".join("?" * len(rows))
    links = tuple(Link(a, b, kind, json.loads(d)) for a, b, kind, d in db.execute(
        f"SELECT a, b, kind, detail FROM metaphor_edges WHERE a IN ({q}) AND b IN ({q}) ORDER BY a, b",
        (*rows, *rows)))
    variants: dict[str, int] = {}
    for key in rows:
        for v, n in db.execute("SELECT value, n FROM metaphor_counts WHERE key = ? AND kind = 'surface'", (key,)):
            variants[v] = variants.get(v, 0) + n
    variants = dict(sorted(variants.items(), key=lambda kv: (-kv[1], kv[0])))
    images = {m.id: m.label for m in list_metaphors(db, min_conversations=min_conversations)}
    shared: dict[str, int] = {}
    for mids in conversation_metaphors(db, sorted({*images, s.id})).values():
        if s.id in mids:
            for other in mids:
                if other != s.id:
                    shared[other] = shared.get(other, 0) + 1
    co = tuple((i, images[i], n) for i, n in sorted(shared.items(), key=lambda kv: (-kv[1], images[kv[0]], kv[0])))
    return Explanation(s, listed, tuple(reasons), cut, model_id(db), scored, detail.occurrences, keys, links,
                       variants, co)


# --- candidates and co-occurrence ----------------------------------------------------------------


def list_candidates(index: Any, *, min_uses: int = 1, limit: int | None = None) -> list[Candidate]:
    """Every lemma-key candidate with at least ``min_uses`` uses, by score."""
    db = _db(index)
    if not has_metaphors(db):
        return []
    sql = ("SELECT k.key, k.label, k.lang, k.construction, k.uses, k.sentences, k.conversations, k.first_time, "
           "k.first_role, k.score, mm.metaphor_id, k.figurative FROM metaphor_keys k "
           "LEFT JOIN metaphor_members mm ON mm.key = k.key WHERE k.uses >= ? ORDER BY k.score DESC, k.key")
    rows = db.execute(sql + (f" LIMIT {int(limit)}" if limit else ""), (min_uses,)).fetchall()
    return [Candidate(*r) for r in rows]


def metaphors_result(items: list[MetaphorSummary], status: ListStatus | None = None,
                     role: str | None = None) -> dict[str, Any]:
    """The ``tropegraph metaphors --json`` document (also ``/api/metaphors`` and the MCP tool).

    With ``status``: what the list leaves out (``hidden``) and the cut-off it applied, and for an
    empty list the ``message`` saying why and what to do (``role``: the list was that speaker's).
    """
    out: dict[str, Any] = {"metaphors": [m.to_dict() for m in items], "times": TIMES}
    if status is not None:
        out["use"] = USE
        out["threshold"] = status.threshold
        out["hidden"] = status.to_dict()
        if not items:
            out["message"] = status.message(role)
    return out


def conversation_metaphors(index: Any, metaphor_ids: list[str] | None = None) -> dict[str, list[str]]:
    """conversation id → the metaphors (ids, sorted) used in it; only ``metaphor_ids`` when given."""
    db = _db(index)
    if not has_metaphors(db):
        return {}
    keep = set(metaphor_ids) if metaphor_ids is not None else None
    out: dict[str, set[str]] = {}
    for mid, conv in db.execute("SELECT mm.metaphor_id, c.value FROM metaphor_counts c "
                                "JOIN metaphor_members mm ON mm.key = c.key WHERE c.kind = 'conv'"):
        if keep is None or mid in keep:
            out.setdefault(conv, set()).add(mid)
    return {conv: sorted(m) for conv, m in sorted(out.items())}


def cooccurrences(index: Any, metaphor_ids: list[str] | None = None) -> list[tuple[str, str, int]]:
    """``(a, b, n)``: metaphors ``a < b`` both used in ``n`` conversations."""
    counts: dict[tuple[str, str], int] = {}
    for mids in conversation_metaphors(index, metaphor_ids).values():
        for i, a in enumerate(mids):
            for b in mids[i + 1 :]:
                counts[(a, b)] = counts.get((a, b), 0) + 1
    return sorted((a, b, n) for (a, b), n in counts.items())
