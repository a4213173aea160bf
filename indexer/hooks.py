"""Callbacks run after every committed indexing batch, in the indexing process.

``AFTER_BATCH`` functions are called as ``fn(index, added_turn_ids, removed_turn_ids)``:

- ``added_turn_ids``: turns inserted, or whose text, role or time changed, in the batch (re-process them);
- ``removed_turn_ids``: turn ids deleted from the index (their rows are gone).

The batch is already committed; a hook that fails is reported as a warning and never undoes it.
Register with ``indexer.hooks.AFTER_BATCH.append(fn)`` (the metaphor engine does this).

``AFTER_APPLY`` functions are called as ``fn(index)`` once at the end of every
``Pipeline.apply`` (an ``index`` run, a watcher batch): a hook that paces its per-batch work on
a long run finishes it there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

AfterBatch = Callable[[Any, list[int], list[int]], None]

AfterApply = Callable[[Any], None]

AFTER_BATCH: list[AfterBatch] = []
AFTER_APPLY: list[AfterApply] = []


def run_after_batch(index: Any, added: list[int], removed: list[int]) -> list[str]:
    """Call every hook; return one message per hook that raised (they never stop indexing)."""
    problems = []
    for fn in AFTER_BATCH:
        try:
            fn(index, list(added), list(removed))
        except Exception as exc:  # noqa: BLE001 - a hook's bug must not break indexing
            name = getattr(fn, "__qualname__", repr(fn))
            problems.append(f"after-batch hook {name} failed: {type(exc).__name__}: {exc}")
    return problems


def run_after_apply(index: Any) -> list[str]:
    """Call every AFTER_APPLY hook; return one message per hook that raised."""
    problems = []
    for fn in AFTER_APPLY:
        try:
            fn(index)
        except Exception as exc:  # noqa: BLE001 - a hook's bug must not break indexing
            name = getattr(fn, "__qualname__", repr(fn))
            problems.append(f"after-apply hook {name} failed: {type(exc).__name__}: {exc}")
    return problems


DEFAULT_HOOK_MODULES = ("indexer.metaphors",)
"""Modules that register hooks when imported; ``index_vault`` loads them so the Python API keeps
the same derived data (metaphors) up to date as the CLI does."""


def load_default_hooks() -> None:
    """Import the modules whose hooks every full indexing run should have (idempotent)."""
    import importlib

    for name in DEFAULT_HOOK_MODULES:
        importlib.import_module(name)
