"""Only prose makes candidates: code (fenced, indented, inline, or pasted without fences), URLs,
link targets, embeds and HTML never do — also through the parser and pipeline for Nexus turns —,
and a phrase found only in plain notes is not listed as an image (a help vault's terms)."""
from __future__ import annotations

import textwrap

from hypothesis import given
from hypothesis import strategies as st
from test_metaphor_support import FakeScorer, build_planted_index

from indexer.metaphors.extract import MASK, extract, mask_markup
from queries.metaphors import explain_metaphor, list_metaphors, list_status


def labels(text: str) -> list[str]:
    return [c.label for c in extract(text)]


def test_code_makes_no_candidates():
    text = textwrap.dedent("""\
        It is a bridge between worlds.
        ```python
        for block in self.blocks:
            map_of_meaning = bridge between worlds
        ```
        ~~~
        a map of meaning in a tilde fence
        ~~~

            an indented ladder of abstraction

        Run `the ladder of abstraction` now.
         for block in self.transformer.h:
         x = tok_emb + pos_emb
        """)
    assert labels(text) == ["bridge between worlds"]


def test_links_urls_and_html_keep_only_what_the_reader_sees():
    text = ("Смотри [[Карта смысла|карту смысла]] и [[Мост между мирами]] здесь. "
            "Read [the ladder of abstraction](https://example.org/map-of-meaning) now. "
            "![[ladder of abstraction.png]] https://example.org/bridge_between/worlds. <b>deep sea</b> <!-- UID: x -->")
    assert labels(text) == ["карта смысла", "ladder of abstraction", "deep sea"]


def test_lists_keep_their_indented_lines():
    text = "- first item\n    the ladder of abstraction goes on\n\n- second"
    assert labels(text) == ["ladder of abstraction"]


def test_masking_keeps_offsets_and_words_apart():
    text = "A map `x` of meaning: [[a|b]] https://x.org and self.map, a ladder of abstraction."
    masked = mask_markup(text)
    assert len(masked) == len(text)
    assert "map of meaning" not in {c.label for c in extract("A map `x` of meaning.")}  # not joined across code
    assert masked.count(MASK) == len("`x`") + len("[[a|") + len("]]") + len("https://x.org") + len("self.map")
    [c] = extract(text)
    assert text[c.start:c.end] == c.surface == "ladder of abstraction"  # offsets index the original text


@given(st.lists(st.sampled_from([*list("ab `~[]|()<>!:/._-\n\t#*"), "map of meaning", "    ", "```", "http://"]),
                max_size=60).map("".join))
def test_masking_never_raises_and_keeps_length(text):
    masked = mask_markup(text)
    assert len(masked) == len(text)
    assert all(m in (t, MASK) for m, t in zip(masked, text, strict=True))
    assert [i for i, ch in enumerate(text) if ch == "\n"] == [i for i, ch in enumerate(masked) if ch == "\n"]


NEXUS = """---
nexus: nexus-ai-chat-importer
provider: chatgpt
aliases: {title}
conversation_id: {cid}
create_time: {day}T10:00:00.000Z
update_time: {day}T10:05:00.000Z
---

# Title: {title}

Created: {dmy} at 10:00:00
Last Updated: {dmy} at 10:05:00
Chat URL: https://chat.openai.com/c/{cid}

>[!nexus_user] **User** - {dmy} at 10:00:00
> Why does `for block in self.blocks` fail? The bridge between worlds is my question.
<!-- UID: {cid}-u -->

>[!nexus_agent] **Assistant** - {dmy} at 10:01:00
> Here is the loop:
> ```python
> for block in self.blocks:
>     ladder_of_abstraction = block in self
> ```
> Pasted without a fence:
>  for block in self.transformer.h:
> The bridge between worlds stays.
<!-- UID: {cid}-a -->
"""


def test_code_in_nexus_turns_and_plain_note_terms_through_the_pipeline(tmp_path, monkeypatch):
    from indexer.metaphors import engine

    scorer = FakeScorer(images=("internal link", "bridge between world"), model_id="markup-test")
    monkeypatch.setattr(engine, "default_scorer", lambda *a, **k: scorer)
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    for i, day in enumerate(("2025-01-05", "2025-02-07")):
        y, m, d = day.split("-")
        (vault / f"chat{i}.md").write_text(NEXUS.format(title=f"Loop {i}", cid=f"c0ffee{i}", day=day,
                                                        dmy=f"{d}/{m}/{y}"), encoding="utf-8")
    for i in range(3):  # documentation pages: a term in headings, links and prose, in no conversation
        (vault / f"help{i}.md").write_text(
            f"# Internal links\n\nOpen **Internal links** in [[Settings]]. Internal links page {i}.\n",
            encoding="utf-8")
    idx = build_planted_index(vault, tmp_path / "index")
    try:
        keys = {k for (k,) in idx.db.execute("SELECT DISTINCT key FROM metaphor_occurrences")}
        assert "bridge between world" in keys
        assert not {k for k in keys if "block" in k or "self" in k or "ladder" in k}
        term = idx.db.execute("SELECT key, conversations, figurative FROM metaphor_keys "
                              "WHERE label = 'internal links'").fetchone()
        assert term is not None and term[1] == 3, term
        status = list_status(idx)
        assert term[2] == 0.9  # judged an image, recurring in 3 notes, but said in no conversation
        assert [m.label for m in list_metaphors(idx)] == ["bridge between worlds"]
        all_labels = {m.label: m for m in list_metaphors(idx, min_conversations=1, include_literal=True)}
        term_m, bridge = all_labels["internal links"], all_labels["bridge between worlds"]
        assert not term_m.in_chats and bridge.in_chats
        # one vocabulary: a plain note is not called a conversation, an undated note use is not "? by note"
        assert (term_m.places(), term_m.first_use()) == ("3 plain notes", "undated in a plain note")
        assert (bridge.places(), bridge.first_use()) == ("2 conversations", "2025-01-05T10:00:00 by user")
        assert (status.images, status.notes_only, status.chat_turns) == (1, 1, None)  # None: some chat turns
        why = explain_metaphor(idx, "internal links")
        assert not why.listed and "in plain notes only: never said in a conversation turn" in why.reasons
    finally:
        idx.close()
