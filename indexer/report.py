"""What one indexing run did: counters, failures and timing; printed as a summary or as JSON.

Exit codes of ``tropegraph index``: 0 when the run completed — including when some notes failed
to read (they are listed as warnings, counted in ``notes_failed``, and retried next run); 1 with an
``Error: …`` line when the vault or the index itself can't be used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Failure:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Report:
    notes_seen: int = 0
    notes_changed: int = 0
    """Notes (re)parsed because they are new or their content changed."""
    notes_unchanged: int = 0
    notes_moved: int = 0
    notes_removed: int = 0
    notes_failed: int = 0
    notes_skipped: int = 0
    """Notes deliberately left out (tropegraph's own reports)."""
    turns_added: int = 0
    turns_updated: int = 0
    turns_removed: int = 0
    passages_embedded: int = 0
    """Passages sent to the embedding model in this run."""
    passages_reused: int = 0
    """New or changed passages whose vector was already stored (content-addressed)."""
    passages_queued: int = 0
    """New passages queued for embedding by this run's notes phase."""
    passages_pending: int = 0
    """Passages still waiting to be embedded when the run ended (0 after a complete run)."""
    vectors_removed: int = 0
    batches: int = 0
    """Committed batches of notes."""
    embed_batches: int = 0
    """Committed windows of vectors."""
    seconds: float = 0.0
    notes_seconds: float = 0.0
    """Time until every note was parsed and keyword-searchable (the notes phase)."""
    embed_seconds: float = 0.0
    model: str | None = None
    full: bool = False
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def fail(self, path: str, message: str) -> None:
        self.notes_failed += 1
        self.failures.append(Failure(path, message))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["embed_seconds"] = round(self.embed_seconds, 3)
        data["notes_seconds"] = round(self.notes_seconds, 3)
        data["failures"] = [{"path": f.path, "message": f.message} for f in self.failures]
        return data

    def __str__(self) -> str:
        lines = [
            (
                f"Notes: {self.notes_seen} seen, {self.notes_changed} changed, {self.notes_moved} moved, "
                f"{self.notes_removed} removed, {self.notes_failed} failed"
            ),
            f"Turns: {self.turns_added} added, {self.turns_updated} updated, {self.turns_removed} removed",
            f"Passages: {self.passages_embedded} embedded, {self.passages_reused} reused"
            + (f", {self.passages_pending} waiting to be embedded" if self.passages_pending else "")
            + (f" ({self.model})" if self.model else ""),
            f"Done in {self.seconds:.1f} s"
            + (f" ({self.embed_seconds:.1f} s embedding)" if self.passages_embedded else ""),
        ]
        return "\n".join(lines)
