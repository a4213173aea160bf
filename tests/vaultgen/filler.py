"""Filler vaults for benchmarks: N conversations of pack filler text, deterministic per seed.

Sizes match what the benchmarks were calibrated on: 2-14 turns per conversation (about 8 on
average, so ``--scale 12500`` gives about 100k turns), users 1-3 sentences, assistants 3-12,
sentences drawn with replacement (so passages repeat, as in long real archives). Layouts, locales,
custom formats, providers and file-name quirks are spread over every kind the renderer knows.
"""
from __future__ import annotations

import datetime as dt
import random
import uuid

from .content import compose, sentence
from .planted import _finish
from .render import CUSTOM, LAYOUTS, LOCALES, OFFSETS, Conversation, Turn

# Title shapes: plain, a question with ':' and '?', '#'/'^'/'[ ]' kept in names, accents, a
# leading Cyrillic word Nexus strips from the file name.
_TITLES = ["{topic} {i}", "Вопрос: {topic} {i}?", "C# {topic} {i}", "{topic} {i} [черновик]",
           "Ёлка {topic} {i}", "Café {topic} {i}", "{topic} ^{i}"]


def build_filler(pack: dict, n: int, seed: int = 7) -> list[Conversation]:
    rng = random.Random(seed)
    start = dt.datetime.fromisoformat(pack["start"])
    topics = [(lang, topic) for lang in pack["filler"] for topic in pack["filler"][lang]]
    layouts, locales, customs = list(LAYOUTS), list(LOCALES), list(CUSTOM)
    weights = [1 if LAYOUTS[k].legacy or LAYOUTS[k].version == "1.0.x" else 6 for k in layouts]  # few 1.0.x
    convs: list[Conversation] = []
    for i in range(n):
        lang, topic = rng.choice(topics)
        filler = pack["filler"][lang][topic]
        layout = rng.choices(layouts, weights)[0]
        legacy = LAYOUTS[layout].legacy is not None or LAYOUTS[layout].version == "1.0.x"
        provider = "chatgpt" if legacy else rng.choice(["chatgpt", "claude"])
        locale = rng.choice(locales)
        custom = rng.choice(customs) if LAYOUTS[layout].seconds and rng.random() < 0.2 else None
        seconds = LAYOUTS[layout].seconds or custom is not None
        when = start + dt.timedelta(minutes=i * 97 + rng.randint(0, 90), seconds=rng.randint(0, 59))
        turns = []
        for j in range(rng.randint(2, 14)):
            role = "user" if j % 2 == 0 else "assistant"
            k = rng.randint(1, 3) if role == "user" else rng.randint(3, 12)
            body = compose(rng, [sentence(rng.choice(filler)) for _ in range(k)], role)
            if j:
                when += dt.timedelta(minutes=rng.randint(1, 6), seconds=rng.randint(0, 59))
            turns.append(Turn(role, str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                              when if seconds else when.replace(second=0), body))
        title = rng.choice(_TITLES).format(topic=topic, i=i)
        if i and rng.random() < 0.02:  # the same title twice in a folder: Nexus adds ' (1)'
            title = convs[-1].title
        conv = Conversation(title, provider, str(uuid.UUID(int=rng.getrandbits(128), version=4)), layout,
                            locale, turns, custom, "gpt-4o", OFFSETS[locale],
                            reimported=LAYOUTS[layout].iso_frontmatter and rng.random() < 0.1)
        convs.append(_finish(conv))
    return convs
