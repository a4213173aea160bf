"""Run a tropegraph command that SIGKILLs itself right after its Nth committed batch, before any
after-batch hook (the metaphor engine) runs: the worst moment for derived data (#17 finding 3).

Usage: python _kill_after_commit.py N tropegraph-args…
"""
from __future__ import annotations

import os
import signal
import sys

from indexer import hooks

hooks.load_default_hooks()
after = int(sys.argv[1])
seen = [0]


def die(index, added, removed) -> None:
    seen[0] += 1
    if seen[0] >= after:
        os.kill(os.getpid(), signal.SIGKILL)


hooks.AFTER_BATCH.insert(0, die)

from interfaces.cli import cli

cli(sys.argv[2:])
