"""One turn with its neighbours: what was said just before and after, for reading a hit in context.

Read-only; shared by the MCP server's ``get_turn`` tool and the web explorer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queries.render.links import obsidian_uri


@dataclass(frozen=True)
class TurnText:
    """One turn's text (possibly cut to a length; ``chars`` is the full length)."""

    uid: str
    role: str
    model: str | None
    time: str | None
    position: int
    text: str
    chars: int

    @property
    def truncated(self) -> bool:
        return len(self.text) < self.chars

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "role": self.role,
            "model": self.model,
            "time": self.time,
            "position": self.position,
            "text": self.text,
            "chars": self.chars,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class TurnContext:
    """A turn, its conversation, and up to ``context`` turns either side (in note order)."""

    conversation_id: str
    title: str
    provider: str | None
    note: str
    """Vault-relative path of the note holding the conversation."""
    uri: str
    turn: TurnText
    before: tuple[TurnText, ...]
    after: tuple[TurnText, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation": {
                "id": self.conversation_id,
                "title": self.title,
                "provider": self.provider,
                "note": self.note,
                "uri": self.uri,
            },
            "turn": self.turn.to_dict(),
            "before": [t.to_dict() for t in self.before],
            "after": [t.to_dict() for t in self.after],
        }


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ", int(limit * 0.8))  # end on a word when one ends near the limit
    return (cut[:space] if space > 0 else cut).rstrip() + " …"


def get_turn(
    index: Any,
    uid: str,
    *,
    context: int = 2,
    max_chars: int | None = None,
    context_chars: int | None = None,
) -> TurnContext:
    """The turn ``uid`` (or ``CONVERSATION_ID:UID``) with ``context`` neighbouring turns each side.

    ``max_chars`` cuts the turn's text, ``context_chars`` the neighbours' (None: whole texts).
    Raises ``queries.search.SearchError`` (with the fix) for an unknown or ambiguous UID.
    """
    from queries.search import SearchError, _vault_name, find_turn

    if context < 0:
        raise SearchError(f"context must be 0 or more turns (got {context})")
    db = index.db
    turn_id, conv = find_turn(db, uid)
    row = db.execute(
        """SELECT t.position, t.note_id, n.path, coalesce(c.title, n.title), c.provider
           FROM turns t JOIN notes n ON n.id = t.note_id LEFT JOIN conversations c ON c.id = t.conversation_id
           WHERE t.id = ?""",
        (turn_id,),
    ).fetchone()
    if row is None:  # removed by a writer between the two reads
        raise SearchError(f"turn {uid!r} was just removed from the index; search again")
    position, note_id, note, title, provider = row
    rows = db.execute(
        """SELECT id, uid, role, model, time, position, text FROM turns
           WHERE conversation_id = ? AND note_id = ? AND position BETWEEN ? AND ? ORDER BY position""",
        (conv, note_id, position - context, position + context),
    ).fetchall()
    turn: TurnText | None = None
    before: list[TurnText] = []
    after: list[TurnText] = []
    for tid, t_uid, role, model, time, pos, text in rows:
        limit = max_chars if tid == turn_id else context_chars
        item = TurnText(t_uid, role, model, time, pos, _cut(text, limit), len(text))
        if tid == turn_id:
            turn = item
        elif pos < position:
            before.append(item)
        else:
            after.append(item)
    if turn is None:
        raise SearchError(f"turn {uid!r} was just removed from the index; search again")
    return TurnContext(conv, title, provider, note, obsidian_uri(_vault_name(index), note), turn,
                       tuple(before), tuple(after))
