"""Derived data: tables computed from the turns after a batch commits (the metaphor tables).

Derived steps run after the commit of the turns they depend on (hooks), so a kill can fall
between the two. To make that visible and repairable, whatever is behind is **recorded in the
database, in the same transaction as the change itself**:

- every batch that adds, changes or removes turns bumps ``meta.turns_generation`` inside its
  own transaction (``bump``);
- a step records the generation it has caught up with (``mark_done``) inside the transaction
  that writes its results.

A step whose recorded generation is older than the current one is *behind* (``behind``): the
next ``tropegraph index`` or ``watch`` (even with no change in the vault) brings it up to date
through its ``AFTER_APPLY`` hook, and ``tropegraph status`` lists it (``pending``). Nothing is
kept in memory, so a kill at any moment loses nothing.

Steps are listed in ``STEPS`` with what their backlog is, so ``status`` can describe it with
SQL alone (without importing the step's code).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

GENERATION_KEY = "turns_generation"


@dataclass(frozen=True)
class Step:
    """A derived step: its name, and a SQL count of what it still has to do (for ``status``)."""

    name: str
    backlog_sql: str
    backlog_unit: str


STEPS: dict[str, Step] = {
    "metaphors": Step(
        "metaphors",
        "SELECT count(*) FROM turns t LEFT JOIN metaphor_done d ON d.turn_id = t.id "
        "WHERE d.turn_id IS NULL OR d.text_hash != t.text_hash || '|' || t.role || '|' || coalesce(t.time, '')",
        "turns not yet scanned for metaphors",
    ),
}


@dataclass(frozen=True)
class Pending:
    """A step that is behind the turns: ``backlog`` items left (None when unknown)."""

    name: str
    backlog: int | None
    unit: str
    since: float | None
    """When the step last caught up (None: never)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "backlog": self.backlog, "unit": self.unit, "last_done": self.since}

    def __str__(self) -> str:
        what = f"{self.backlog} {self.unit}" if self.backlog else "out of date"
        return f"{self.name}: {what}"


def generation(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (GENERATION_KEY,)).fetchone()
    return int(row[0]) if row and row[0] else 0


def bump(db: sqlite3.Connection) -> None:
    """Record, inside the caller's transaction, that the turns changed: every step is behind."""
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (GENERATION_KEY,),
    )


def mark_done(db: sqlite3.Connection, name: str) -> None:
    """Record, inside the caller's transaction, that step ``name`` has caught up with the turns."""
    db.execute(
        "INSERT INTO derived_state (name, generation, done_at) VALUES (?, ?, ?) ON CONFLICT(name) "
        "DO UPDATE SET generation = excluded.generation, done_at = excluded.done_at",
        (name, generation(db), time.time()),
    )


def _states(db: sqlite3.Connection) -> dict[str, tuple[int, float | None]]:
    try:
        rows = db.execute("SELECT name, generation, done_at FROM derived_state").fetchall()
    except sqlite3.OperationalError:  # an index from before m004 opened read-only
        return {}
    return {name: (int(gen), done_at) for name, gen, done_at in rows}


def is_behind(db: sqlite3.Connection, name: str) -> bool:
    """Whether step ``name`` has not caught up with the latest change to the turns."""
    current = generation(db)
    state = _states(db).get(name)
    return current > 0 and (state is None or state[0] < current)


def pending(db: sqlite3.Connection) -> list[Pending]:
    """Every known step that is behind, with its backlog (for ``tropegraph status``)."""
    current = generation(db)
    states = _states(db)
    out = []
    for step in STEPS.values():
        state = states.get(step.name)
        if current == 0 or (state is not None and state[0] >= current):
            continue
        try:
            backlog = int(db.execute(step.backlog_sql).fetchone()[0])
        except sqlite3.Error:
            backlog = None
        out.append(Pending(step.name, backlog, step.backlog_unit, state[1] if state else None))
    return out
