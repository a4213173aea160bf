"""Curation actions shared by every interface: ``tropegraph metaphors track|reject|merge|split``,
the web explorer's buttons and the MCP server call these, so they edit ``tropegraph.toml`` the same way.

Each action appends to the vault's curation file (``indexer.metaphors.curation.append_entry``:
append-only, atomic, refuses a malformed file) and then re-applies curation to the index when
it can take the writer lock; otherwise it says when the edit will apply. Metaphors are named by
id or phrase and stored by label, so curation survives a rebuilt index.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault_schema.errors import VaultError

APPLIED = "applied to the index"


class CurationRefused(VaultError):
    """The action cannot be done as asked (unknown metaphor, nothing to split, …)."""


@dataclass(frozen=True)
class CurationResult:
    """What an action wrote and whether the index already reflects it."""

    action: str
    """``track``, ``reject``, ``merge`` or ``split``."""
    labels: tuple[str, ...]
    """The phrases written (the metaphors' labels; for a split, one per lemma key)."""
    path: Path
    """The curation file."""
    applied: str
    """:data:`APPLIED`, or when it will apply (the index is busy, or not built yet)."""
    message: str
    """The sentence the CLI prints."""

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "labels": list(self.labels), "path": str(self.path),
                "applied": self.applied == APPLIED, "status": self.applied, "message": self.message}


def apply_curation(vault: Path, index_dir: Path) -> str:
    """Re-apply the curation file to the index now if we can write it; else say when it will apply."""
    from indexer.errors import IndexLocked, IndexNotFound
    from indexer.metaphors.engine import update
    from indexer.store import open_index

    try:
        with open_index(index_dir, notify=lambda m: None, command="tropegraph metaphors") as idx:
            update(idx, vault=vault)
        return APPLIED
    except IndexLocked:
        return "the index is busy; it applies with the next indexing batch"
    except IndexNotFound:
        return "it applies when you run `tropegraph index`"


def _detail(index_dir: Path, ref: str) -> Any:
    from indexer.store import open_index
    from queries.metaphors import MetaphorNotFound, get_metaphor

    try:
        with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
            return get_metaphor(idx, ref)
    except MetaphorNotFound as exc:
        raise CurationRefused(str(exc)) from exc


def _done(vault: Path, index_dir: Path, action: str, labels: Sequence[str], path: Path, what: str) -> CurationResult:
    applied = apply_curation(vault, index_dir)
    return CurationResult(action, tuple(labels), path, applied, f"{what} in {path}; {applied}.")


def track(vault: Path, index_dir: Path, phrase: str, aliases: Sequence[str] = ()) -> CurationResult:
    """Always list ``phrase`` as a metaphor, with ``aliases`` merged into it."""
    from indexer.metaphors import curation

    phrase = " ".join(phrase.split())
    if not phrase:
        raise CurationRefused("give the phrase to track, e.g. tropegraph metaphors track \"карта смысла\"")
    fields: dict[str, Any] = {"phrase": phrase}
    clean = [a for a in (" ".join(a.split()) for a in aliases) if a]
    if clean:
        fields["aliases"] = clean
    path = curation.append_entry(vault, "track", **fields)
    return _done(vault, index_dir, "track", [phrase], path, f"Tracking «{phrase}»")


def reject(vault: Path, index_dir: Path, ref: str) -> CurationResult:
    """Hide the metaphor ``ref`` (id or phrase): it is not an image."""
    from indexer.metaphors import curation

    label = _detail(index_dir, ref).summary.label
    path = curation.append_entry(vault, "reject", phrase=label)
    return _done(vault, index_dir, "reject", [label], path, f"Rejected «{label}»")


def merge(vault: Path, index_dir: Path, refs: Sequence[str]) -> CurationResult:
    """Make two or more metaphors (ids or phrases) one."""
    from indexer.metaphors import curation

    if len(refs) < 2:
        raise CurationRefused("merge needs at least two metaphor ids")
    labels = [_detail(index_dir, r).summary.label for r in refs]
    path = curation.append_entry(vault, "merge", phrases=labels)
    return _done(vault, index_dir, "merge", labels, path, f"Merged {' + '.join(f'«{lab}»' for lab in labels)}")


def split(vault: Path, index_dir: Path, ref: str) -> CurationResult:
    """Undo the automatic grouping of ``ref``: each of its lemma keys becomes its own metaphor."""
    from indexer.metaphors import curation

    detail = _detail(index_dir, ref)
    labels: dict[str, str] = {}
    for o in detail.occurrences:
        labels.setdefault(o.key, o.surface.lower())
    if len(labels) < 2:
        raise CurationRefused(f"«{detail.summary.label}» has one lemma key only; nothing to split")
    written = [labels[key] for key in sorted(labels)]
    for phrase in written:
        path = curation.append_entry(vault, "split", phrase=phrase)
    return _done(vault, index_dir, "split", written, path,
                 f"Split «{detail.summary.label}» into {len(labels)} metaphors")
