"""Renderers for timelines and reports: terminal text, SVG/PNG charts, HTML pages, Obsidian notes.

Each renderer is a pure function from a :class:`queries.timeline.Timeline` (or a list of them) to
a string or bytes; writing files into the vault is ``queries.reports``' job.
"""
