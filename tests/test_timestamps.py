"""Nexus timestamps in every locale and custom format of formats.md §1.6."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault_schema.timestamps import detect_date_order, parse_iso, parse_timestamp

T = dt.datetime

# (string as Nexus writes it, expected naive local time) — the examples of formats.md §1.6.
TABLE = [
    ("24.07.2025 at 14:45", T(2025, 7, 24, 14, 45)),  # ru, <=1.2.0 (LT)
    ("24.07.2025 at 9:05", T(2025, 7, 24, 9, 5)),  # ru, no leading zero
    ("24.07.2025 at 14:45:12", T(2025, 7, 24, 14, 45, 12)),  # ru LTS
    ("07/24/2025 at 2:45 PM", T(2025, 7, 24, 14, 45)),  # en <=1.2.0
    ("07/24/2025 at 2:45:12 PM", T(2025, 7, 24, 14, 45, 12)),  # en / custom us
    ("07/25/2025 at 12:05:00 AM", T(2025, 7, 25, 0, 5)),  # midnight hour
    ("07/25/2025 at 12:05:00 PM", T(2025, 7, 25, 12, 5)),  # noon hour
    ("2025/10/26 at 20:57:56", T(2025, 10, 26, 20, 57, 56)),  # ja / zh (real)
    ("24-07-2025 at 14:45:12", T(2025, 7, 24, 14, 45, 12)),  # nl
    ("2025.07.24. at 14:45:12", T(2025, 7, 24, 14, 45, 12)),  # hu
    ("2025.07.24. at 오후 2:45:12", T(2025, 7, 24, 14, 45, 12)),  # ko PM
    ("2025.07.24. at 오전 12:05:00", T(2025, 7, 24, 0, 5)),  # ko AM midnight
    ("24/07/2025 at 14.45.12", T(2025, 7, 24, 14, 45, 12)),  # id / ms
    ("2025-07-24 at 14:45:12", T(2025, 7, 24, 14, 45, 12)),  # sv
    ("24/07/2025 at 14:45:12", T(2025, 7, 24, 14, 45, 12)),  # fr/it/... and custom eu
    ("٢٤/\u200f٧/\u200f٢٠٢٥ at ١٤:٤٥:١٢", T(2025, 7, 24, 14, 45, 12)),  # ar: Arabic-Indic digits + RLM
    ("۲۴/۷/۲۰۲۵ at ۱۴:۴۵", T(2025, 7, 24, 14, 45)),  # fa-style extended digits
    ("2025-07-24 14:45:12", T(2025, 7, 24, 14, 45, 12)),  # custom iso
    ("24.07.2025 14:45:12", T(2025, 7, 24, 14, 45, 12)),  # custom de
    ("2025/07/24 14:45:12", T(2025, 7, 24, 14, 45, 12)),  # custom jp
    ("24/07/2025 at रात 10:30 बजे", T(2025, 7, 24, 22, 30)),  # hi meridiem word
    ("07/24/2025 at 2:45:12\u202fPM", T(2025, 7, 24, 14, 45, 12)),  # narrow no-break space
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_locale_and_custom_formats(text: str, expected: dt.datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed.value == expected
    assert not parsed.ambiguous


def test_iso_utc_becomes_naive_utc() -> None:
    parsed = parse_iso("2025-07-24T12:45:00.000Z")
    assert parsed.value == T(2025, 7, 24, 12, 45)
    assert parsed.utc
    assert parse_timestamp("2025-07-25T07:51:42.000Z").value == T(2025, 7, 25, 7, 51, 42)
    assert parse_timestamp("2025-07-25T09:51:42+02:00").value == T(2025, 7, 25, 7, 51, 42)


@pytest.mark.parametrize("text", ["", "garbage", "at at", "99.99.2025 at 14:45", "24.07.2025 at 25:61", "1/2/3/4"])
def test_unreadable_timestamps_give_none(text: str) -> None:
    assert parse_timestamp(text).value is None


def test_slash_dates_without_meridiem_are_ambiguous_and_read_day_first() -> None:
    parsed = parse_timestamp("05/07/2025 at 14:45")
    assert parsed.ambiguous
    assert parsed.value == T(2025, 7, 5, 14, 45)


def test_a_component_over_12_decides_by_itself() -> None:
    assert parse_timestamp("13/07/2025 at 14:45").value == T(2025, 7, 13, 14, 45)
    assert parse_timestamp("07/13/2025 at 14:45").value == T(2025, 7, 13, 14, 45)


def test_explicit_order_wins_over_meridiem_guess() -> None:
    assert parse_timestamp("05/07/2025 at 2:45 PM", "DMY").value == T(2025, 7, 5, 14, 45)
    assert parse_timestamp("05/07/2025 at 2:45 PM").value == T(2025, 5, 7, 14, 45)
    assert parse_timestamp("05/07/2025 at 14:45", "MDY").value == T(2025, 5, 7, 14, 45)


def test_detect_order_from_other_samples() -> None:
    assert detect_date_order(["05/07/2025 at 14:45", "24/07/2025 at 9:00"]) == "DMY"
    assert detect_date_order(["05/07/2025 at 14:45", "07/24/2025 at 9:00 AM"]) == "MDY"
    assert detect_date_order(["05/07/2025 at 14:45"]) is None
    assert detect_date_order(["24.07.2025 at 14:45"]) is None  # not a slash date: no evidence needed


def test_detect_order_from_iso_reference() -> None:
    # create_time is UTC; the local date is within a day of it.
    assert detect_date_order(["05/07/2025 at 00:30"], T(2025, 7, 4, 22, 30)) == "DMY"
    assert detect_date_order(["05/07/2025 at 14:00"], T(2025, 5, 7, 12, 0)) == "MDY"
    assert detect_date_order(["05/06/2025 at 14:00"], T(2025, 1, 1)) is None


@given(st.text(max_size=80))
def test_parse_timestamp_never_raises(text: str) -> None:
    parse_timestamp(text)
    detect_date_order([text], T(2025, 1, 1))


@given(st.datetimes(min_value=T(1990, 1, 1), max_value=T(2080, 12, 31)))
def test_round_trip_ru_en_ja(when: dt.datetime) -> None:
    when = when.replace(microsecond=0)
    h12 = when.hour % 12 or 12
    ampm = "AM" if when.hour < 12 else "PM"
    assert parse_timestamp(f"{when:%d.%m.%Y} at {when.hour}:{when:%M:%S}").value == when
    assert parse_timestamp(f"{when:%m/%d/%Y} at {h12}:{when:%M:%S} {ampm}").value == when
    assert parse_timestamp(f"{when:%Y/%m/%d} at {when:%H:%M:%S}").value == when
