"""The metaphor engine (issue #6): recurring images, their variants across inflections and
languages, user curation in ``tropegraph.toml``; kept up to date by an AFTER_BATCH hook.

Modules: ``extract`` (construction patterns), ``rank`` (score), ``group`` (variants),
``curation`` (the user's file), ``engine`` (update / recompute_all / register).
Importing this package registers the hook.
"""
from __future__ import annotations

from indexer.metaphors.engine import after_batch, recompute_all, register, update

register()

__all__ = ["after_batch", "recompute_all", "register", "update"]
