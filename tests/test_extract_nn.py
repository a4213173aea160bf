"""English noun–noun compounds (``nn``): "attention compass" is a candidate, verbs are not nouns."""
from __future__ import annotations

import pytest

from indexer.metaphors.extract import extract


def nn(text: str) -> list[tuple[str, str, str, str]]:
    return [(c.key, c.head, c.dep, c.surface) for c in extract(text) if c.construction == "nn"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My attention compass spins wildly today.", [("attention compass", "compass", "attention", "attention compass")]),
        ("Which search engine gives the best results?", [("search engine", "engine", "search", "search engine")]),
        ("I saved tomato seeds from last summer.", [("tomato seed", "seed", "tomato", "tomato seeds")]),
        ("Old search engines the web forgot.", [("search engine", "engine", "search", "search engines")]),
        ("I bought a proper hiking compass.", [("hiking compass", "compass", "hiking", "hiking compass")]),
        ("Open the settings page and the text editor.", [("setting page", "page", "setting", "settings page"),
                                                          ("text editor", "editor", "text", "text editor")]),
    ],
)
def test_compounds(text, expected):
    assert nn(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Text goes in, an answer comes out.",  # noun + verb
        "I file reports every week.",  # pronoun + verb + noun
        "Open files carefully.",  # imperative at the start
        "It works. Share information with the team.",  # imperative starting a later sentence
        "Steps:\n- **Action:** Share information",  # imperative starting a list item
        "Then click here:\nUpload Document",  # imperative after a line break
        "We met last weekend.",  # time adverbs
        "She sang beautifully.",
        "These are the best results.",  # adjective-capable first word
        "The slow internet drives me crazy.",  # noun + a verb that is also a plural noun, + its object
        "A sharp mind helps me focus.",
        "The tool points out errors.",  # + a particle
    ],
)
def test_not_compounds(text):
    assert nn(text) == []


def test_offsets_and_sentence():
    text = "Hello there. I live in a filter bubble: everyone agrees."
    (c,) = [c for c in extract(text) if c.construction == "nn"]
    assert text[c.start : c.end] == "filter bubble"
    assert c.sentence == "I live in a filter bubble: everyone agrees"
    assert text[c.sent_start :].startswith(c.sentence)
    assert c.label == "filter bubble"
    assert c.lang == "en"


def test_adjective_pairs_stay_adj():
    kinds = {c.key: c.construction for c in extract("I am training a neural network on my notes.")}
    assert kinds.get("neural network") == "adj"
