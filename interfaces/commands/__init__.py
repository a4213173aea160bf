"""Registry of CLI commands. Each module defines click commands and imports nothing heavy at top level."""
from __future__ import annotations

import importlib

import click

# module name -> command attribute names. A module is imported at CLI start, so keep them light.
_MODULES: dict[str, tuple[str, ...]] = {
    "parse": ("parse",),
    "index": ("index", "status", "path"),
    "search": ("search", "similar"),
    "watch": ("watch", "service"),
    "metaphors": ("metaphors", "graph"),
    "timeline": ("timeline", "report"),
    "demo": ("demo",),
    "serve": ("serve",),
    "mcp_command": ("mcp",),
}


def _load() -> list[click.Command]:
    found: list[click.Command] = []
    for mod_name, names in _MODULES.items():
        try:
            mod = importlib.import_module(f"interfaces.commands.{mod_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"interfaces.commands.{mod_name}":
                continue  # command module not written yet
            raise
        for name in names:
            cmd = getattr(mod, name, None)
            if isinstance(cmd, click.Command):
                found.append(cmd)
    return found


COMMANDS = _load()
