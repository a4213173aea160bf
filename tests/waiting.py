"""Helpers for tests with threads and subprocesses: wait for a condition, never a fixed sleep."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition", poll: float = 0.02) -> Any:
    """Return ``cond()``'s first truthy value, polling; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def no_thread_leaks(join_timeout: float = 10.0) -> Iterator[None]:
    """Generator for an autouse fixture: every thread a test starts is joined before it ends."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before]
    for t in leaked:
        t.join(timeout=join_timeout)
    assert not [t for t in leaked if t.is_alive()], f"leaked threads: {leaked}"
