"""Timeline computation on synthetic occurrences and on the planted vault's truth file (no index needed)."""
from __future__ import annotations

import datetime as dt
import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queries.timeline import (
    MetaphorRef,
    Occurrence,
    TimelineError,
    build_timeline,
    centroid_distance,
    characteristic_terms,
    content_lemmas,
    human_lag,
    period_key,
    period_range,
    permutation_p_value,
)

REF = MetaphorRef("m1", "карта смысла", ("карта смысла", "карту смысла"))


def occ(uid: str, role: str, time: str | None, sentence: str = "текст", conv: str = "c1") -> Occurrence:
    return Occurrence(uid, conv, f"{conv}.md", f"Title {conv}", role, time, sentence)


def bag_embed(texts: list[str]) -> np.ndarray:
    """A tiny deterministic bag-of-lemmas embedder: same words, same direction."""
    rows = []
    for text in texts:
        v = np.zeros(128, dtype=np.float32)
        for lem in content_lemmas(text):
            v[int(hashlib.sha256(lem.encode()).hexdigest(), 16) % 128] += 1
        n = np.linalg.norm(v)
        rows.append(v / n if n else v)
    return np.vstack(rows)


# --- periods -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "by", "key"),
    [
        (dt.datetime(2025, 3, 31, 23, 59), "month", "2025-03"),
        (dt.datetime(2025, 3, 31), "quarter", "2025-Q1"),
        (dt.datetime(2025, 4, 1), "quarter", "2025-Q2"),
        (dt.datetime(2024, 12, 30), "week", "2025-W01"),  # ISO week belongs to the next year
        (dt.datetime(2025, 1, 13), "week", "2025-W03"),
    ],
)
def test_period_key(when: dt.datetime, by: str, key: str) -> None:
    assert period_key(when, by) == key


def test_period_range_fills_gaps_across_years() -> None:
    assert period_range("2024-11", "2025-02", "month") == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert period_range("2024-Q4", "2025-Q2", "quarter") == ["2024-Q4", "2025-Q1", "2025-Q2"]
    assert period_range("2024-W52", "2025-W02", "week") == ["2024-W52", "2025-W01", "2025-W02"]


def test_unknown_granularity_is_a_clear_error() -> None:
    with pytest.raises(TimelineError, match="use one of month, quarter, week"):
        build_timeline(REF, [occ("a", "user", "2025-01-01T10:00:00")], by="year")


# --- first use and uptake ------------------------------------------------------------------------


def test_first_use_uptake_and_lag() -> None:
    occs = [
        occ("u2", "user", "2025-01-20T12:00:00"),
        occ("a1", "assistant", "2025-01-10T12:00:00"),
        occ("a2", "assistant", "2025-02-01T12:00:00"),
        occ("u3", "user", "2025-03-01T00:00:00"),
    ]
    tl = build_timeline(REF, occs)
    assert [o.uid for o in tl.occurrences] == ["a1", "u2", "a2", "u3"]
    assert (tl.first.uid, tl.first.role) == ("a1", "assistant")
    assert (tl.uptake.uid, tl.uptake.role, tl.uptake.lag_days) == ("u2", "user", 10.0)
    assert [(p.period, p.count, p.user, p.assistant) for p in tl.periods] == [
        ("2025-01", 2, 1, 1),
        ("2025-02", 1, 0, 1),
        ("2025-03", 1, 1, 0),
    ]


def test_no_uptake_when_the_other_speaker_never_uses_it() -> None:
    tl = build_timeline(REF, [occ("u1", "user", "2025-01-01T10:00:00"), occ("u2", "user", "2025-02-01T10:00:00")])
    assert tl.first.role == "user"
    assert tl.uptake is None
    assert tl.to_dict()["uptake"] is None


def test_undated_uses_are_listed_last_and_left_out_of_periods() -> None:
    tl = build_timeline(REF, [occ("n1", "note", None), occ("u1", "user", "2025-01-01T10:00:00")])
    assert [o.uid for o in tl.occurrences] == ["u1", "n1"]
    assert sum(p.count for p in tl.periods) == 1


def test_same_turn_counts_once() -> None:
    tl = build_timeline(REF, [occ("u1", "user", "2025-01-01T10:00:00")] * 2)
    assert len(tl.occurrences) == 1


# --- drift ---------------------------------------------------------------------------------------


def _cluster(centre: int, n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((n, dim))
    m[:, centre] = 1.0
    m += rng.normal(scale=0.05, size=(n, dim))
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_permutation_test_separates_moved_from_unmoved_contexts() -> None:
    a, b, c = _cluster(0, 5, seed=1), _cluster(1, 5, seed=2), _cluster(0, 5, seed=3)
    assert centroid_distance(a, b) > 0.9
    # exact test over all 252 splits: only the observed split and its mirror are as extreme
    assert permutation_p_value(a, b) == pytest.approx(2 / math.comb(10, 5))
    assert centroid_distance(a, c) < 0.05
    assert permutation_p_value(a, c) > 0.2


def test_exact_permutation_test_counts_the_observed_split_for_float32_vectors() -> None:
    # embedders return float32; the observed split is one of the splits, so p is never 0
    a, b = _cluster(0, 5, seed=1).astype(np.float32), _cluster(1, 5, seed=2).astype(np.float32)
    assert permutation_p_value(a, b) == pytest.approx(2 / math.comb(10, 5))
    rng = np.random.default_rng(8)
    for _ in range(20):
        v = rng.normal(size=(6, 8)).astype(np.float32)
        assert permutation_p_value(v[:3], v[3:]) >= 1 / math.comb(6, 3)


def test_permutation_test_is_seeded_when_sampled() -> None:
    a, b = _cluster(0, 12, seed=4), _cluster(0, 12, seed=5)
    assert permutation_p_value(a, b) == permutation_p_value(a, b)


def test_drift_per_period_with_p_value_or_too_few() -> None:
    jan = [occ(f"j{i}", "user", f"2025-01-{i + 1:02d}T10:00:00") for i in range(4)]
    feb = [occ(f"f{i}", "assistant", f"2025-02-{i + 1:02d}T10:00:00") for i in range(4)]
    mar = [occ("m0", "user", "2025-03-01T10:00:00")]
    vectors = {o.uid: v for o, v in zip(jan, _cluster(0, 4, seed=6), strict=True)}
    vectors |= {o.uid: v for o, v in zip(feb, _cluster(1, 4, seed=7), strict=True)}
    vectors["m0"] = _cluster(0, 1, seed=8)[0]
    tl = build_timeline(REF, jan + feb + mar, vectors=vectors)
    p1, p2, p3 = tl.periods
    assert (p1.drift, p1.p_value) == (0.0, None)
    assert p2.drift > 0.9
    assert p2.p_value == pytest.approx(2 / math.comb(8, 4), abs=1e-4)
    assert p3.drift < 0.1
    assert p3.p_value is None
    assert "too few uses" in p3.drift_note


def test_no_vectors_means_no_drift() -> None:
    tl = build_timeline(REF, [occ("u1", "user", "2025-01-01T10:00:00")])
    assert tl.periods[0].drift is None
    assert tl.periods[0].p_value is None


def test_embed_is_called_on_masked_context() -> None:
    seen: list[str] = []

    def embed(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return bag_embed(texts)

    o = Occurrence("u1", "c", "c.md", "C", "user", "2025-01-01T10:00:00", "Карту смысла рисую.",
                   context="Я рисую Карту смысла каждый день.", surface="карту смысла")
    build_timeline(REF, [o], embed=embed)
    assert seen == ["Я рисую … каждый день."]


# --- terms, quote, co-occurrence -----------------------------------------------------------------


def test_characteristic_terms_prefer_words_of_their_own_period() -> None:
    docs = {
        "a": content_lemmas("Дневник и записи. Дневник перечитывать. Модель думает."),
        "b": content_lemmas("Векторный индекс архива. Индекс и модель. Модель думает."),
    }
    terms = characteristic_terms(docs, k=2)
    assert terms["a"][0] == "дневник"
    assert terms["b"][0] == "индекс"
    assert "и" not in terms["a"] + terms["b"]


def test_terms_skip_stopwords_and_the_metaphor_itself() -> None:
    occs = [
        occ("u1", "user", "2025-01-01T10:00:00", "Я хочу составить карту смысла для своих записей."),
        occ("u2", "user", "2025-01-02T10:00:00", "Это карта смысла моих записей и дневника."),
    ]
    terms = build_timeline(REF, occs).periods[0].terms
    assert terms[0] == "запись"
    assert not {"карта", "смысл", "я", "для", "свой", "это", "мой"} & set(terms)


def test_quote_is_nearest_the_period_centroid() -> None:
    occs = [
        occ("a", "user", "2025-01-01T10:00:00", "Дневник"),
        occ("b", "user", "2025-01-02T10:00:00", "Дневник записи"),
        occ("c", "user", "2025-01-03T10:00:00", "Записи индекса архива"),
    ]
    tl = build_timeline(REF, occs, embed=bag_embed)
    assert tl.periods[0].quote.uid == "b"


def test_co_occurring_counts_conversations_per_period() -> None:
    occs = [
        occ("a", "user", "2025-01-01T10:00:00", conv="c1"),
        occ("b", "user", "2025-01-05T10:00:00", conv="c2"),
        occ("c", "user", "2025-02-01T10:00:00", conv="c3"),
    ]
    bridge, silence = MetaphorRef("m2", "мост между мирами"), MetaphorRef("m3", "структура тишины")
    co = {"c1": [bridge, silence], "c2": [bridge, REF], "c3": [silence]}
    tl = build_timeline(REF, occs, cooccurring=co)
    assert [(c.label, c.count) for c in tl.periods[0].co_occurring] == [("мост между мирами", 2), ("структура тишины", 1)]
    assert [(c.id, c.count) for c in tl.periods[1].co_occurring] == [("m3", 1)]


# --- JSON shape ----------------------------------------------------------------------------------


def test_json_shape_matches_the_issue() -> None:
    tl = build_timeline(REF, [occ("a", "assistant", "2025-01-01T10:00:00"), occ("b", "user", "2025-01-03T10:00:00")],
                        embed=bag_embed)
    d = tl.to_dict()
    # the issue's shape, plus what says how to read it: the definition of a use, the --role filter,
    # whether the timeline is of a metaphor or of a phrase found in the text, that times are local,
    # the period length and the fixed drift scale every chart draws (CLI PNG/SVG and the explorer)
    assert set(d) == {"metaphor", "occurrences", "first", "uptake", "periods", "use", "role", "source", "times",
                      "by", "drift_axis"}
    assert (d["role"], d["source"], d["times"], d["by"], d["drift_axis"]) == (None, "metaphor", "local", "month", 0.3)
    assert set(d["metaphor"]) == {"id", "label", "variants"}
    assert set(d["occurrences"][0]) == {"uid", "conversation_id", "note", "title", "role", "time", "sentence",
                                            "surface"}
    assert set(d["first"]) == {"uid", "role", "time"}
    assert set(d["uptake"]) == {"role", "time", "uid", "lag_days", "lag"}
    assert (d["uptake"]["lag_days"], d["uptake"]["lag"]) == (2.0, "2 days")
    assert set(d["periods"][0]) == {
        "period", "count", "user", "assistant", "drift", "p_value", "terms", "quote", "co_occurring"
    }


# --- invariants ----------------------------------------------------------------------------------

_times = st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2026, 12, 31))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["user", "assistant", "note"]), _times), min_size=1, max_size=25),
    st.sampled_from(["month", "quarter", "week"]),
)
def test_invariants(uses: list[tuple[str, dt.datetime]], by: str) -> None:
    occs = [occ(f"t{i}", role, t.isoformat(timespec="seconds")) for i, (role, t) in enumerate(uses)]
    rng = np.random.default_rng(len(uses))
    vecs = rng.normal(size=(len(occs), 8))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    tl = build_timeline(REF, occs, by=by, vectors={o.uid: v for o, v in zip(occs, vecs, strict=True)})
    assert sum(p.count for p in tl.periods) == len(occs)
    assert all(p.user + p.assistant + p.note == p.count for p in tl.periods)
    keys = [p.period for p in tl.periods]
    assert keys == sorted(set(keys), key=keys.index)
    assert set(keys) <= set(period_range(keys[0], keys[-1], by))
    assert tl.first.time == min(o.time for o in occs)
    assert all(0.0 <= p.drift <= 2.0 for p in tl.periods)
    assert all(p.p_value is None or 0.0 < p.p_value <= 1.0 for p in tl.periods)
    if tl.uptake is not None:
        assert tl.uptake.role != tl.first.role
        assert tl.uptake.lag_days >= 0
    assert build_timeline(REF, list(reversed(occs)), by=by, vectors=dict(zip([o.uid for o in occs], vecs, strict=True))) == tl


# --- against the planted vault's truth -----------------------------------------------------------


def truth_expectations(truth: dict, image_id: str, by: str = "month") -> dict:
    """First use, introducer, uptake and counts per period, read straight from the truth file."""
    uses = sorted((o for o in truth["occurrences"] if o["kind"] == "image" and o["id"] == image_id),
                  key=lambda o: o["time"])
    first = uses[0]
    other = next((o for o in uses if o["role"] != first["role"]), None)
    counts: dict[str, dict[str, int]] = {}
    for o in uses:
        key = period_key(dt.datetime.fromisoformat(o["time"]), by)
        c = counts.setdefault(key, {"count": 0, "user": 0, "assistant": 0})
        c["count"] += 1
        c[o["role"]] += 1
    return {"first": first, "uptake": other, "counts": counts, "n": len(uses)}


def truth_occurrences(truth: dict, image_id: str) -> list[Occurrence]:
    convs = {c["index"]: c for c in truth["conversations"]}
    return [
        Occurrence(o["uid"], convs[o["conv"]]["conversation_id"], convs[o["conv"]]["path"],
                   convs[o["conv"]]["title"], o["role"], o["time"], o["sentence"], surface=o["surface"][0])
        for o in truth["occurrences"]
        if o["kind"] == "image" and o["id"] == image_id
    ]


@pytest.mark.parametrize("by", ["month", "quarter"])
def test_truth_occurrences_give_truth_attribution(planted_source: tuple, by: str) -> None:
    _, truth = planted_source
    for image_id, image in truth["images"].items():
        exp = truth_expectations(truth, image_id, by)
        tl = build_timeline(MetaphorRef(image_id, image["canonical"], tuple(image["variants"])),
                            truth_occurrences(truth, image_id), by=by, embed=bag_embed)
        d = tl.to_dict()
        assert d["first"] == {"uid": exp["first"]["uid"], "role": exp["first"]["role"], "time": exp["first"]["time"]}
        if exp["uptake"] is None:
            assert d["uptake"] is None
        else:
            lag = (dt.datetime.fromisoformat(exp["uptake"]["time"]) - dt.datetime.fromisoformat(exp["first"]["time"]))
            assert d["uptake"] == {"role": exp["uptake"]["role"], "time": exp["uptake"]["time"],
                                   "uid": exp["uptake"]["uid"], "lag_days": round(lag.total_seconds() / 86400, 2),
                                   "lag": human_lag(lag.total_seconds() / 86400)}
        assert {p["period"]: {k: p[k] for k in ("count", "user", "assistant")} for p in d["periods"]} == exp["counts"]
        assert len(d["occurrences"]) == exp["n"]


# --- contexts and resolving phrases --------------------------------------------------------------


def test_context_window_takes_the_sentence_and_its_neighbours() -> None:
    from queries.timeline import context_window

    text = "Первое предложение. Второе с картой смысла! Третье?\nЧетвёртое."
    i = text.index("картой")
    assert context_window(text, i, i + 6) == "Первое предложение. Второе с картой смысла! Третье?"
    assert context_window(text, 0, 5, neighbours=0) == "Первое предложение."


MAPS = MetaphorRef("m1", "карта смысла", ("карта смысла", "карту смысла", "map of meaning"))
SILENCE = MetaphorRef("m2", "структура тишины", ("структура тишины", "структуре тишины"))


@pytest.mark.parametrize(
    ("phrase", "how", "ids"),
    [
        ("m2", "id", ["m2"]),
        ("Структура   тишины", "label", ["m2"]),
        ("MAP OF MEANING", "variant", ["m1"]),
        ("картой смысла", "lemmas", ["m1"]),
        ("тишина", "words", ["m2"]),
    ],
)
def test_resolve_phrase(phrase: str, how: str, ids: list[str]) -> None:
    from queries.timeline import resolve_phrase

    res = resolve_phrase(phrase, [MAPS, SILENCE])
    assert res.how == how
    assert [m.id for m in res.matches] == ids


def test_resolve_by_meaning_and_suggestions() -> None:
    from queries.timeline import resolve_phrase

    def sim(phrase: str, texts: list[str]) -> np.ndarray:
        return np.array([0.9 if "тишин" in t else 0.5 for t in texts])

    res = resolve_phrase("безмолвие", [MAPS, SILENCE], similarity=sim)
    assert (res.how, res.chosen) == ("similarity", SILENCE)
    res = resolve_phrase("безмолвие", [MAPS, SILENCE], similarity=lambda p, t: np.full(len(t), 0.3))
    assert res.chosen is None and res.how == "none"
    res = resolve_phrase("карта смыслов мира", [MAPS, SILENCE])
    assert res.chosen is None
    assert res.suggestions[0] == MAPS  # closest by spelling without an embedder


@pytest.mark.parametrize(("days", "text"), [
    (0.0, "0 min"), (8 / 1440, "8 min"), (59 / 1440, "59 min"), (1.5 / 24, "2 h"), (1.9, "46 h"),
    (2.0, "2 days"), (3.2, "3 days"), (59.0, "59 days"), (61.0, "2 months"), (400.0, "13 months"), (None, None),
])
def test_lags_in_human_units(days, text):
    assert human_lag(days) == text


def test_for_role_recomputes_the_periods():
    occs = [occ("a", "user", "2025-01-01T10:00:00"), occ("b", "assistant", "2025-01-01T10:05:00"),
            occ("c", "assistant", "2025-02-01T10:00:00"), occ("d", "user", "2025-03-01T10:00:00")]
    tl = build_timeline(REF, occs, embed=bag_embed)
    mine = tl.for_role("assistant")
    assert [(p.period, p.count, p.user, p.assistant) for p in mine.periods] == [("2025-01", 1, 0, 1), ("2025-02", 1, 0, 1)]
    assert [o.uid for o in mine.occurrences] == ["b", "c"]
    assert (mine.first, mine.uptake, mine.role) == (tl.first, tl.uptake, "assistant")
    assert mine.periods[0].drift == 0.0 and mine.periods[1].drift is not None  # vectors kept, not re-embedded
    assert tl.for_role(None) is tl
