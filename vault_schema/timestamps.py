"""Nexus timestamps: every moment.js locale and custom format the plugin writes (formats.md §1.6).

Turn headers carry local wall-clock time as ``<date> at <time>`` (locale) or ``<date> <time>``
(custom formats); frontmatter times are the same locale strings (≤1.2.0) or ISO UTC (≥1.3.0).
The only real ambiguity is ``DD/MM`` vs ``MM/DD``: it is settled by evidence from the same note
(:func:`detect_date_order`), never guessed silently (:attr:`ParsedTime.ambiguous`).
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

DateOrder = Literal["DMY", "MDY"]

# Bidi marks (ar), no-break and narrow no-break spaces (modern Intl output).
_MARKS = dict.fromkeys(map(ord, "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e"), None)
_SPACES = dict.fromkeys(map(ord, "\u00a0\u202f\u2009\u3000"), " ")

_DATE_RE = re.compile(
    r"(?P<a>\d{1,4})\s*(?P<s1>[./\-年])\s*(?P<b>\d{1,2})\s*(?P<s2>[./\-月])\s*(?P<c>\d{1,4})\s*[.日]?"
)
# Meridiem words: en/el before or after, ko/zh before, hi/mr/bn before (moment's meridiemParse).
_PM_WORDS = {"pm", "p.m.", "μμ", "오후", "下午", "晚上", "中午", "午後"}
_AM_WORDS = {"am", "a.m.", "πμ", "오전", "上午", "早上", "凌晨", "午前"}
# Indic: word -> function(hour) -> 24h hour (moment hi/mr/bn meridiemHour, simplified).
_INDIC = {
    "रात": lambda h: h if h < 4 else h + 12,
    "रात्री": lambda h: h if h < 4 else h + 12,
    "सुबह": lambda h: h,
    "सकाळी": lambda h: h,
    "दोपहर": lambda h: h if h >= 10 else h + 12,
    "दुपारी": lambda h: h if h >= 10 else h + 12,
    "शाम": lambda h: h + 12,
    "सायंकाळी": lambda h: h + 12,
    "রাত": lambda h: h if h < 4 else h + 12,
    "সকাল": lambda h: h,
    "দুপুর": lambda h: h if h >= 10 else h + 12,
    "বিকাল": lambda h: h + 12,
}
_WORD = r"(?P<{name}>[APap]\.?[Mm]\.?|[ΠπΜμ][Μμ]|오전|오후|上午|下午|晚上|中午|早上|凌晨|午前|午後|" + "|".join(
    sorted(_INDIC, key=len, reverse=True)
) + ")"
_TIME_RE = re.compile(
    r"(?:" + _WORD.format(name="pre") + r"\s*)?"
    r"(?P<h>\d{1,2})\s*[:.時点]\s*(?P<m>\d{2})(?:\s*[:.分]\s*(?P<s>\d{2}))?(?:\.\d+)?\s*[秒]?"
    r"(?:\s*" + _WORD.format(name="post") + r")?"
)
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$")


@dataclass(frozen=True)
class ParsedTime:
    """Result of :func:`parse_timestamp`."""

    value: dt.datetime | None
    """Naive local time (or naive UTC for ISO strings with an offset); None when unparseable."""
    ambiguous: bool = False
    """True when day and month could be swapped and no evidence decided: the most plausible was picked."""
    utc: bool = False
    """True when the string carried an offset or ``Z`` and ``value`` was converted to UTC."""


def normalize(text: str) -> str:
    """ASCII digits, no bidi marks, plain spaces: what every later regex expects."""
    text = text.translate(_MARKS).translate(_SPACES)
    if not text.isascii():
        text = "".join(str(unicodedata.digit(c)) if c.isdigit() and not c.isascii() else c for c in text)
    return re.sub(r"\s+", " ", text).strip()


def _split(text: str) -> tuple[str, str]:
    """Date part and time part (split on ' at ', else on the first space after the date)."""
    if " at " in text:
        date, _, time = text.partition(" at ")
        return date.strip(), time.strip()
    m = _DATE_RE.search(text)
    if m:
        return text[: m.end()], text[m.end() :].strip()
    return text, ""


def _date_parts(date: str) -> tuple[int, int, int, str, bool] | None:
    """(first, second, third, separator, year_first) of a date string."""
    m = _DATE_RE.search(date)
    if not m:
        return None
    a, b, c = m.group("a"), m.group("b"), m.group("c")
    year_first = len(a) == 4 or m.group("s1") == "年"
    if not year_first and len(c) not in (2, 4):
        return None
    return int(a), int(b), int(c), m.group("s1"), year_first


def _time_parts(time: str) -> tuple[int, int, int] | None:
    m = _TIME_RE.search(time)
    if not m:
        return None
    h, mi, s = int(m.group("h")), int(m.group("m")), int(m.group("s") or 0)
    word = (m.group("pre") or m.group("post") or "").lower()
    if word in _PM_WORDS and h < 12:
        h += 12
    elif word in _AM_WORDS and h == 12:
        h = 0
    elif word in _INDIC:
        h = _INDIC[word](h) % 24 if h != 12 or word not in ("रात", "रात्री", "রাত") else 0
    if not (0 <= h <= 23 and 0 <= mi <= 59 and 0 <= s <= 59):
        return None
    return h, mi, s


def _has_meridiem(time: str) -> bool:
    m = _TIME_RE.search(time)
    return bool(m and (m.group("pre") or m.group("post")))


def _year(y: int) -> int:
    return y + 2000 if y < 100 else y


def _make(y: int, mo: int, d: int, hms: tuple[int, int, int]) -> dt.datetime | None:
    try:
        return dt.datetime(_year(y), mo, d, *hms)
    except ValueError:
        return None


def parse_iso(text: str) -> ParsedTime:
    """An ISO 8601 string; with ``Z``/offset it becomes naive UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return ParsedTime(None)
    if value.tzinfo is not None:
        return ParsedTime(value.astimezone(dt.UTC).replace(tzinfo=None), utc=True)
    return ParsedTime(value)


def parse_timestamp(text: str, order: DateOrder | None = None) -> ParsedTime:
    """Parse a Nexus timestamp in any locale/custom format; never raises.

    ``order`` is the note-level day/month order from :func:`detect_date_order`; it only matters
    for slash dates whose day and month are both ≤ 12.
    """
    if not text or len(text) > 200:
        return ParsedTime(None)
    raw = normalize(text)
    if _ISO_RE.match(raw):
        return parse_iso(raw)
    date, time = _split(raw)
    parts = _date_parts(date)
    if parts is None:
        return ParsedTime(None)
    hms = _time_parts(time) if time else (0, 0, 0)
    if hms is None:
        return ParsedTime(None)
    a, b, c, sep, year_first = parts
    if year_first:  # ja/zh/sv/hu/ko/iso/jp: YYYY?MM?DD
        return ParsedTime(_make(a, b, c, hms))
    if sep in ".-":  # ru/de/... and nl: DD.MM.YYYY, DD-MM-YYYY
        return ParsedTime(_make(c, b, a, hms))
    # Slash with the year last: DD/MM (fr, it, es, id, eu, ar, ...) or MM/DD (en, us).
    if a > 12 and b <= 12:
        return ParsedTime(_make(c, b, a, hms))
    if b > 12 and a <= 12:
        return ParsedTime(_make(c, a, b, hms))
    if a == b:
        return ParsedTime(_make(c, a, b, hms))
    if order is not None:
        return ParsedTime(_make(c, a, b, hms) if order == "MDY" else _make(c, b, a, hms))
    if _has_meridiem(time):  # en is the only slash locale with AM/PM: MM/DD
        return ParsedTime(_make(c, a, b, hms))
    return ParsedTime(_make(c, b, a, hms), ambiguous=True)


def _slash_parts(text: str) -> tuple[int, int, int] | None:
    raw = normalize(text)
    if _ISO_RE.match(raw):
        return None
    parts = _date_parts(_split(raw)[0])
    if parts is None or parts[4] or parts[3] != "/":
        return None
    return parts[0], parts[1], parts[2]


def detect_date_order(samples: Iterable[str], reference: dt.datetime | None = None) -> DateOrder | None:
    """Day/month order of the slash dates in one note, from the evidence they carry.

    A component > 12 decides (as Nexus's own ``DateParser.detectOrder`` does). Failing that,
    ``reference`` (the frontmatter ISO ``create_time``, UTC) is compared with the first sample:
    local and UTC dates differ by at most one day. Returns None when nothing decides.
    """
    first: tuple[int, int, int] | None = None
    dmy = mdy = 0
    for s in samples:
        p = _slash_parts(s)
        if p is None:
            continue
        first = first or p
        a, b, _ = p
        if a > 12 and b <= 12:
            dmy += 1
        elif b > 12 and a <= 12:
            mdy += 1
    if dmy and not mdy:
        return "DMY"
    if mdy and not dmy:
        return "MDY"
    if first is not None and reference is not None and first[0] != first[1]:
        a, b, y = first
        ref = reference.date()

        def near(mo: int, d: int) -> bool:
            try:
                return abs((dt.date(_year(y), mo, d) - ref).days) <= 1
            except ValueError:
                return False

        as_dmy, as_mdy = near(b, a), near(a, b)
        if as_dmy != as_mdy:
            return "DMY" if as_dmy else "MDY"
    return None
