"""``tropegraph metaphors score``'s refusals: exact messages and exit codes, without loading the model
(every case here is refused before scoring)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from interfaces.cli import cli


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["metaphors", "score", *args], input=input)


def test_a_language_that_cannot_read_the_phrase_is_a_usage_error():
    r = invoke("карта смысла", "--lang", "en", "--context", "Эти тексты — карта смысла.")
    assert r.exit_code == 2
    assert r.output.splitlines()[-1] == ("Error: --lang en cannot read 'карта смысла' (no Latin letters); use "
                                         "--lang ru or leave --lang out (the language is then guessed)")
    r = invoke("map of meaning", "--lang", "ru")
    assert r.exit_code == 2
    assert r.output.splitlines()[-1] == ("Error: --lang ru cannot read 'map of meaning' (no Cyrillic letters); use "
                                         "--lang en or leave --lang out (the language is then guessed)")


def test_jsonl_refusals_are_one_error_line_each_in_order():
    lines = ['{"phrase": "map of meaning", "sentence": "A map of meaning.", "lang": "ru"}',
             "{not json",
             '{"phrase": "карта смысла"}',  # the default --lang en cannot read it either
             ""]
    r = invoke("--jsonl", "--lang", "en", input="\n".join(lines) + "\n")
    assert r.exit_code == 0, r.output
    assert [json.loads(x) for x in r.output.splitlines()] == [
        {"error": 'line 1: "lang": "ru" cannot read \'map of meaning\' (no Cyrillic letters); use "en" or leave '
                  '"lang" out'},
        {"error": "line 2: not a JSON line (Expecting property name enclosed in double quotes: line 1 column 2 "
                  "(char 1))"},
        {"error": 'line 3: "lang": "en" cannot read \'карта смысла\' (no Latin letters); use "ru" or leave "lang" out'},
        {"error": "line 4: empty line"},
    ]
