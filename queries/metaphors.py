"""Read API of the metaphor engine: list metaphors, get one with its variants and occurrences.

Reads the tables written by ``indexer.metaphors`` (migration ``m002_metaphors``) and never
writes. Every function takes an open index (``indexer.store.open_index(..., readonly=True)``)
or anything with a ``db`` attribute holding a ``sqlite3.Connection``.

- :func:`list_metaphors` — ranked summaries (the ``tropegraph metaphors`` list).
- :func:`get_metaphor` — one metaphor by id, label, variant or any phrase of its key.
- :func:`list_candidates` — raw lemma-key candidates (one row per key, before grouping).
- :func:`cooccurrences` — metaphor pairs used in the same conversations (weighted).

Times are ISO 8601 local wall-clock strings as the notes wrote them (no offset).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["user", "assistant"]

#: By default a metaphor must recur: used in at least this many conversations (curated ones always show).
MIN_CONVERSATIONS = 2


class MetaphorNotFound(LookupError):
    """No metaphor matches the id or phrase."""


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
    conversations: int
    first_seen: str | None
    first_role: str | None
    last_seen: str | None
    score: float
    curated: bool
    """True when ``tropegraph.toml`` tracks, rejects, merges or splits it."""
    status: str
    """``auto``, ``tracked`` or ``rejected``."""
    keys: tuple[str, ...]
    """Lemma keys grouped into it (``карта смысл``, ``map of mean``)."""
    languages: tuple[str, ...]
    uses_by_role: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape of the issue, plus ``status``, ``keys``, ``languages``, ``uses_by_role``."""
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
        }


@dataclass(frozen=True)
class MetaphorOccurrence:
    """One use of a metaphor in one turn."""

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

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _db(index: Any) -> Any:
    return getattr(index, "db", index)


def has_metaphors(index: Any) -> bool:
    """True when the metaphor tables exist (an index built before the engine has none)."""
    return bool(_db(index).execute("SELECT 1 FROM sqlite_master WHERE name = 'metaphors'").fetchone())


_OCC = """
    SELECT o.id, t.id, t.uid, t.conversation_id, c.title, n.path, t.role, t.time, o.key, o.lang,
           o.surface, o.sentence, o.start, o.end, mm.metaphor_id
    FROM metaphor_members mm
    JOIN metaphor_occurrences o ON o.key = mm.key
    JOIN turns t ON t.id = o.turn_id
    JOIN conversations c ON c.id = t.conversation_id
    JOIN notes n ON n.id = t.note_id
"""
_ORDER = " ORDER BY (t.time IS NULL), t.time, t.id, o.start"


def _summaries(db: Any, ids: list[str] | None, role: Role | None) -> dict[str, MetaphorSummary]:
    meta = {r[0]: r for r in db.execute("SELECT id, label, score, status, curated FROM metaphors")}
    where, args = [], []
    if ids is not None:
        where.append(f"mm.metaphor_id IN ({','.join('?' * len(ids))})")
        args += ids
    if role:
        where.append("t.role = ?")
        args.append(role)
    sql = _OCC + (" WHERE " + " AND ".join(where) if where else "") + _ORDER
    per: dict[str, list[tuple]] = {}
    for r in db.execute(sql, args):
        per.setdefault(r[14], []).append(r)
    out = {}
    for mid, rows in per.items():
        if mid not in meta:
            continue
        surfaces: dict[str, int] = {}
        roles: dict[str, int] = {}
        for r in rows:
            s = r[10].lower()
            surfaces[s] = surfaces.get(s, 0) + 1
            roles[r[6]] = roles.get(r[6], 0) + 1
        times = [r[7] for r in rows if r[7]]
        m = meta[mid]
        out[mid] = MetaphorSummary(
            id=mid, label=m[1],
            variants=tuple(sorted(surfaces, key=lambda s: (-surfaces[s], s))),
            occurrences=len(rows), conversations=len({r[3] for r in rows}),
            first_seen=rows[0][7], first_role=rows[0][6], last_seen=max(times) if times else None,
            score=m[2], curated=bool(m[4]), status=m[3],
            keys=tuple(sorted({r[8] for r in rows})), languages=tuple(sorted({r[9] for r in rows})),
            uses_by_role=roles,
        )
    return out


def list_metaphors(index: Any, *, limit: int | None = None, role: Role | None = None,
                   min_conversations: int = MIN_CONVERSATIONS, include_rejected: bool = False) -> list[MetaphorSummary]:
    """Metaphors by score, best first.

    ``role`` keeps metaphors that role used and counts only its uses (first_seen = that role's
    first use). Metaphors in fewer than ``min_conversations`` conversations are left out unless
    tracked in ``tropegraph.toml``; rejected ones only with ``include_rejected``.
    """
    db = _db(index)
    if not has_metaphors(db):
        return []
    cand = [r[0] for r in db.execute(
        """SELECT m.id FROM metaphors m
           WHERE m.status = 'tracked' OR (SELECT count(DISTINCT t.conversation_id)
                 FROM metaphor_members mm JOIN metaphor_occurrences o ON o.key = mm.key
                 JOIN turns t ON t.id = o.turn_id WHERE mm.metaphor_id = m.id) >= ?
           ORDER BY m.score DESC, m.id""", (min_conversations,))]
    if not cand:
        return []
    sums = _summaries(db, cand, role)
    out = [sums[m] for m in cand if m in sums and (include_rejected or sums[m].status != "rejected")]
    out.sort(key=lambda s: (-s.score, s.id))
    return out[:limit] if limit else out


def find_metaphor(index: Any, ref: str) -> str | None:
    """The id of the metaphor ``ref`` names: an id, a label, a surface variant, or any phrase
    whose lemma key belongs to a metaphor («карту смысла», "map of meaning")."""
    db = _db(index)
    if not has_metaphors(db):
        return None
    ref = ref.strip()
    if db.execute("SELECT 1 FROM metaphors WHERE id = ?", (ref,)).fetchone():
        return ref
    row = db.execute("SELECT id FROM metaphors WHERE lower(label) = lower(?) ORDER BY score DESC", (ref,)).fetchone()
    if row:
        return row[0]
    from indexer.metaphors.engine import phrase_key  # light: extraction only

    for key in (ref.lower(), phrase_key(ref)):
        row = db.execute("SELECT metaphor_id FROM metaphor_members WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0]
    row = db.execute(
        "SELECT mm.metaphor_id FROM metaphor_occurrences o JOIN metaphor_members mm ON mm.key = o.key "
        "WHERE lower(o.surface) = lower(?) LIMIT 1", (ref,)).fetchone()
    return row[0] if row else None


def get_metaphor(index: Any, ref: str) -> MetaphorDetail:
    """One metaphor (by id or phrase, see :func:`find_metaphor`) with all its occurrences.

    Raises :class:`MetaphorNotFound`.
    """
    db = _db(index)
    mid = find_metaphor(db, ref)
    if mid is None:
        raise MetaphorNotFound(f"no metaphor matches {ref!r}; see `tropegraph metaphors` for the list")
    summary = _summaries(db, [mid], None).get(mid)
    if summary is None:
        raise MetaphorNotFound(f"metaphor {mid} has no occurrences left; run `tropegraph index`")
    occs = tuple(
        MetaphorOccurrence(turn_id=r[1], uid=r[2], conversation_id=r[3], conversation_title=r[4], note=r[5],
                           role=r[6], time=r[7], key=r[8], lang=r[9], surface=r[10], sentence=r[11],
                           start=r[12], end=r[13])
        for r in db.execute(_OCC + " WHERE mm.metaphor_id = ?" + _ORDER, (mid,))
    )
    return MetaphorDetail(summary, occs)


def list_candidates(index: Any, *, min_uses: int = 1, limit: int | None = None) -> list[Candidate]:
    """Every lemma-key candidate with at least ``min_uses`` uses, by score."""
    db = _db(index)
    if not has_metaphors(db):
        return []
    sql = ("SELECT k.key, k.label, k.lang, k.construction, k.uses, k.sentences, k.conversations, k.first_time, "
           "k.first_role, k.score, mm.metaphor_id FROM metaphor_keys k LEFT JOIN metaphor_members mm ON mm.key = k.key "
           "WHERE k.uses >= ? ORDER BY k.score DESC, k.key")
    rows = db.execute(sql + (f" LIMIT {int(limit)}" if limit else ""), (min_uses,)).fetchall()
    return [Candidate(*r) for r in rows]


def metaphors_result(items: list[MetaphorSummary]) -> dict[str, Any]:
    """The ``tropegraph metaphors --json`` document (also ``/api/metaphors`` and the MCP tool)."""
    return {"metaphors": [m.to_dict() for m in items]}


def cooccurrences(index: Any, metaphor_ids: list[str] | None = None) -> list[tuple[str, str, int]]:
    """``(a, b, n)``: metaphors ``a < b`` both used in ``n`` conversations."""
    db = _db(index)
    if not has_metaphors(db):
        return []
    rows = db.execute(
        "SELECT DISTINCT t.conversation_id, mm.metaphor_id FROM metaphor_members mm "
        "JOIN metaphor_occurrences o ON o.key = mm.key JOIN turns t ON t.id = o.turn_id").fetchall()
    keep = set(metaphor_ids) if metaphor_ids is not None else None
    by_conv: dict[str, list[str]] = {}
    for conv, mid in rows:
        if keep is None or mid in keep:
            by_conv.setdefault(conv, []).append(mid)
    counts: dict[tuple[str, str], int] = {}
    for mids in by_conv.values():
        mids = sorted(set(mids))
        for i, a in enumerate(mids):
            for b in mids[i + 1 :]:
                counts[(a, b)] = counts.get((a, b), 0) + 1
    return sorted((a, b, n) for (a, b), n in counts.items())
