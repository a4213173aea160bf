"""Message text: sentences from a content pack arranged as users and assistants write them."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

MARK = re.compile(r"\{\{(.+?)\}\}")


@dataclass
class Sentence:
    text: str  # clean text (pack marks removed)
    surfaces: list[str]  # the marked phrases, as written
    planted: bool = False


def sentence(raw: str, planted: bool = False) -> Sentence:
    """A pack sentence: ``{{…}}`` marks the planted phrase; the text keeps the phrase without marks."""
    return Sentence(MARK.sub(lambda m: m.group(1), raw), MARK.findall(raw), planted)


def compose(rng: random.Random, sentences: list[Sentence], role: str) -> str:
    """Markdown for one message.

    Users write one or two plain paragraphs. Assistants structure longer answers: a short opening,
    sometimes a bulleted or numbered list, a bold lead-in, a quoted line. Planted sentences are
    never put in a quote, so every planted phrase stays in the message's own text.
    """
    texts = [s.text for s in sentences]
    if role == "user" or len(sentences) < 3:
        if len(texts) >= 3 and rng.random() < 0.2:
            cut = rng.randint(1, len(texts) - 1)
            return " ".join(texts[:cut]) + "\n\n" + " ".join(texts[cut:])
        return " ".join(texts)
    blocks: list[str] = []
    cut = rng.randint(1, 2)
    blocks.append(" ".join(texts[:cut]))
    rest = sentences[cut:]
    if len(rest) >= 3 and rng.random() < 0.55:
        k = rng.randint(2, min(4, len(rest)))
        numbered = rng.random() < 0.3
        blocks.append("\n".join((f"{i + 1}. " if numbered else "- ") + s.text for i, s in enumerate(rest[:k])))
        rest = rest[k:]
    if rest and not rest[0].planted and len(rest) >= 2 and rng.random() < 0.12:
        blocks.append("> " + rest[0].text)
        rest = rest[1:]
    if rest:
        lead = rest[0].text
        if len(lead) < 90 and rng.random() < 0.3:
            lead = f"**{lead}**"
        blocks.append(" ".join([lead] + [s.text for s in rest[1:]]))
    return "\n\n".join(blocks)
