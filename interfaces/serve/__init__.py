"""``tropegraph serve``: a local web explorer (search, metaphors, timelines, graph) over the index.

A thin layer like the CLI: every page is static HTML + our own scripts (no inline script, strict
Content-Security-Policy) that call a JSON API under ``/api/`` whose documents are the CLI's
``--json`` shapes, built by the same library functions (``queries.*``, ``interfaces.curation``).
The browser libraries are vendored in ``static/vendor/`` (nothing is fetched at run time).
See ``docs/API.md``.
"""
from __future__ import annotations

from interfaces.serve.app import Explorer, create_app, serve

__all__ = ["Explorer", "create_app", "serve"]
