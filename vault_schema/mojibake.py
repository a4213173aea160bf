"""Repair UTF-8 text that was mis-decoded as Mac Roman, Windows-1252 or Latin-1.

The seed note is Russian UTF-8 read as Mac Roman (``–ò–∑`` for ``Из``), which ftfy does not
try. Each run of non-ASCII characters is re-encoded with the suspect codec and decoded as UTF-8;
a run is only replaced when that round trip is exact and the result is plainly text (letters,
no control or combining characters) and shorter. Correct Cyrillic, CJK or accented text never
round-trips (those characters are not in the single-byte codecs, or their bytes are not valid
UTF-8), so it is left alone.
"""
from __future__ import annotations

import contextlib
import re
import unicodedata

import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252)

_CODECS = ("mac_roman", "sloppy-windows-1252", "latin-1")
_RUN_RE = re.compile(r"[^\x00-\x7f]+")
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"}


def _chars(lo: int, hi: int) -> str:
    """Characters that the bytes lo..hi turn into under the suspect codecs (non-ASCII only)."""
    chars = set()
    for codec in _CODECS:
        for b in range(lo, hi + 1):
            with contextlib.suppress(UnicodeDecodeError):
                chars.add(bytes([b]).decode(codec))
    return re.escape("".join(sorted(c for c in chars if ord(c) > 0x7F)))


# A mis-decoded UTF-8 lead byte (0xC2–0xF4) followed by a mis-decoded continuation byte (0x80–0xBF):
# "–ò" for "И". Clean text rarely has such a pair ("— " has a space after the dash).
_SIGNATURE_RE = re.compile(f"[{_chars(0xC2, 0xF4)}][{_chars(0x80, 0xBF)}]")


def _plain(text: str) -> bool:
    return any(c.isalpha() or unicodedata.category(c)[0] in "PS" for c in text) and not any(
        unicodedata.category(c) in _BAD_CATEGORIES for c in text
    )


def _fix_run(run: str) -> str | None:
    if len(run) < 2:
        return None
    for codec in _CODECS:
        try:
            fixed = run.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if len(fixed) < len(run) and _plain(fixed):
            return fixed
    return None


def repair(text: str) -> tuple[str, int, int]:
    """Return the repaired text, how many characters were mis-decoded (0: unchanged) and the
    offset of the first repair (-1: none).

    The note is repaired only when the fixable runs make up at least half of its non-ASCII
    characters, so a stray ``Ã©`` in otherwise clean Russian is not "fixed" into noise.
    """
    if text.isascii() or not _SIGNATURE_RE.search(text):
        return text, 0, -1
    total = fixed_chars = 0
    first = -1
    pieces: list[str] = []
    last = 0
    for m in _RUN_RE.finditer(text):
        run = m.group()
        total += len(run)
        fixed = _fix_run(run)
        if fixed is None:
            continue
        fixed_chars += len(run)
        first = m.start() if first < 0 else first
        pieces.append(text[last : m.start()])
        pieces.append(fixed)
        last = m.end()
    if not fixed_chars or fixed_chars * 2 < total:
        return text, 0, -1
    pieces.append(text[last:])
    return "".join(pieces), fixed_chars, first
