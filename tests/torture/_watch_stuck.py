"""Run ``tropegraph watch`` whose first after-batch hook blocks forever reading a FIFO (in C, as
the old ``sha256_file`` did on a FIFO note): SIGTERM must still end it within a second.

Usage: python _watch_stuck.py FIFO MARKER tropegraph-watch-args…
"""
from __future__ import annotations

import sys
from pathlib import Path

from indexer import hooks

fifo, marker = Path(sys.argv[1]), Path(sys.argv[2])


def stuck(index, added, removed) -> None:
    marker.write_text("blocked", encoding="utf-8")
    with open(fifo, "rb") as fh:  # blocks until a writer opens the FIFO: never
        fh.read()


hooks.load_default_hooks()
hooks.AFTER_BATCH.insert(0, stuck)

from interfaces.cli import cli

cli(sys.argv[3:])
