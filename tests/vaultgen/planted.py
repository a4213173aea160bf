"""The planted corpus: conversations over months with recurring images, and its ground truth.

From a content pack (see ``packs/README.md``):

- **images** recur on a schedule of (conversation, role); the first use introduces the image, its
  wording changes (inflections, an English translation in English conversations) and so does its
  context: the first half of the Russian uses take the ``early`` sentences, the rest the ``late``
  ones (drift);
- **distractors** are literal phrases that recur just as often and must not rank as images;
- **one-offs** are images used once;
- **needles** are single sentences a search must find from a paraphrased query.

Every conversation is rendered in a Nexus layout and locale: the pack's ``style`` names the era,
and the layout tour spreads the conversations of each era over every release and locale family
(1.0.x headings, 1.2.0, 1.3.0, 1.3.2, 1.6.x; ru, en, de, nl, ko, hu, sv, fr, ja, zh, id, ar and the
custom message formats). A few more conversations exercise file-name quirks and attachments.
The truth records every turn as written, every planted occurrence and every needle.
"""
from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass

from .content import Sentence, compose, sentence
from .render import LAYOUTS, OFFSETS, Attachment, Conversation, Turn, decidable

# Per era (the pack's 'style'), the k-th conversation of that era takes TOUR[era][k % len]:
# (layout, locale, custom message format or None). Headings (1.0.x) are ChatGPT-only; a
# conversation of another provider keeps the era's own layout.
TOUR: dict[str, list[tuple[str, str, str | None]]] = {
    "1.2.0": [("1.2.0", "ru", None), ("1.0.2", "ru", None), ("1.2.0", "de", None), ("1.0.x", "en", None),
              ("1.2.0", "ko", None), ("1.2.0", "en", None), ("1.0.8", "nl", None), ("1.2.0", "hu", None),
              ("1.2.0", "ru", None), ("1.2.0", "sv", None)],
    "1.3.2": [("1.3.2", "ru", "de"), ("1.3.2", "ru", None), ("1.3.0", "en", None), ("1.3.0", "fr", None),
              ("1.3.2", "ja", None), ("1.3.2", "ru", None), ("1.3.2", "id", None), ("1.3.0", "zh", None)],
    "1.6.3": [("1.6.3", "ru", "jp"), ("1.6.3", "ru", None), ("1.6.3", "ar", None), ("1.6.3", "en", "us"),
              ("1.6.3", "ru", "eu"), ("1.6.3", "ru", "jp")],
}

# Conversations added after the pack's: titles that Nexus turns into odd file names (a leading
# Cyrillic or CJK word dropped, accents removed, '#', '^', '[' kept, two titles colliding).
QUIRKS: list[tuple[str, str, str]] = [  # (title, layout, locale)
    ("Вопрос: что дальше? [черновик]", "1.6.3", "ru"),
    ("C# и ^якоря", "1.3.2", "de"),
    ("全球流动性指标体系", "1.3.2", "zh"),
    ("コード解説", "1.3.2", "ja"),
    ("Ёжик и йога", "1.2.0", "ru"),
    ("Café «déjà vu»", "1.3.0", "fr"),
]


@dataclass
class _Item:
    kind: str  # image | distractor | oneoff | needle
    id: str
    role: str
    sentence: Sentence


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _plan(pack: dict) -> dict[int, list[_Item]]:
    """Which planted sentence goes into which conversation, for which role."""
    specs = pack["conversations"]
    english = {i for i, s in enumerate(specs) if s.get("lang", "ru") == "en"}
    plan: dict[int, list[_Item]] = defaultdict(list)
    for img in pack["images"]:
        uses = sorted(img["schedule"], key=lambda u: u[0])  # stable: same-conversation uses keep their order
        n_ru = sum(1 for c, _ in uses if c not in english)
        k_ru = k_en = 0
        for conv, role in uses:
            if conv in english:
                bank = img.get("en_templates") or img["early"]
                raw, k_en = bank[k_en % len(bank)], k_en + 1
            else:
                late = k_ru >= (n_ru + 1) // 2
                bank = img["late"] if late else img["early"]
                raw = bank[(k_ru - (n_ru + 1) // 2 if late else k_ru) % len(bank)]
                k_ru += 1
            plan[conv].append(_Item("image", img["id"], role, sentence(raw, True)))
    for d in pack["distractors"]:
        for k, (conv, role) in enumerate(d["schedule"]):
            plan[conv].append(_Item("distractor", d["id"], role, sentence(d["templates"][k % len(d["templates"])], True)))
    for o in pack.get("oneoffs", []):
        plan[o["conv"]].append(_Item("oneoff", o["id"], o["role"], sentence(o["text"], True)))
    for n in pack["needles"]:
        plan[n["conv"]].append(_Item("needle", n["id"], n["role"], sentence(n["text"], True)))
    return plan


def _rendering(spec: dict, era_pos: int, tour: bool) -> tuple[str, str, str | None]:
    era = spec.get("style", "1.2.0")
    custom = {"iso": "iso", "de": "de"}.get(spec.get("turn_locale") or "", spec.get("turn_locale"))
    if not tour:
        return era, spec.get("locale", "ru"), custom
    layout, locale, tour_custom = TOUR[era][era_pos % len(TOUR[era])]
    if LAYOUTS[layout].legacy and spec.get("provider", "chatgpt") != "chatgpt":
        layout = era
    return layout, locale, custom or tour_custom


def _timed_turns(rng: random.Random, start: dt.datetime, roles: list[str], bodies: list[str],
                 seconds: bool) -> list[Turn]:
    turns, when = [], start
    for i, (role, body) in enumerate(zip(roles, bodies, strict=True)):
        if i:
            when += dt.timedelta(minutes=rng.randint(1, 6), seconds=rng.randint(0, 59))
        t = when if seconds else when.replace(second=0)
        turns.append(Turn(role, _uuid(rng), t, body))
    return turns


def _finish(conv: Conversation) -> Conversation:
    """Fall back to a locale whose dates a reader can decide (no DD/MM vs MM/DD guessing)."""
    if not decidable(conv):
        conv.locale, conv.custom, conv.utc_offset = "ru", None, OFFSETS["ru"]
        if not LAYOUTS[conv.layout].seconds:  # the headers now show minutes only
            for t in conv.turns:
                t.time = t.time.replace(second=0)
    return conv


def build_planted(pack: dict, seed: int = 7, *, tour: bool = True, quirks: bool = True,
                  attachments: bool = True) -> tuple[list[Conversation], dict]:
    """The planted conversations and their truth (without note paths: see :func:`vaultgen.generate`)."""
    rng = random.Random(seed)
    specs = pack["conversations"]
    plan = _plan(pack)
    truth: dict = {"conversations": [], "occurrences": [], "needles": [], "attachments": [],
                   "images": {i["id"]: {k: i[k] for k in ("canonical", "variants", "en") if k in i}
                              for i in pack["images"]},
                   "distractors": {d["id"]: {"canonical": d["canonical"]} for d in pack["distractors"]},
                   "oneoffs": {o["id"]: {"text": sentence(o["text"]).text} for o in pack.get("oneoffs", [])}}
    needles = {n["id"]: n for n in pack["needles"]}
    convs: list[Conversation] = []
    era_seen: dict[str, int] = defaultdict(int)
    day = dt.datetime.fromisoformat(pack["start"])
    for ci, spec in enumerate(specs):
        era = spec.get("style", "1.2.0")
        layout, locale, custom = _rendering(spec, era_seen[era], tour)
        era_seen[era] += 1
        day += dt.timedelta(days=spec.get("gap_days", 11))
        start = day.replace(hour=spec.get("hour", rng.randint(8, 22)), minute=rng.randint(0, 59),
                            second=rng.randint(0, 59))
        filler = pack["filler"][spec.get("lang", "ru")][spec["topic"]]
        n = spec.get("turns", 6)
        roles = spec.get("roles") or ["user" if i % 2 == 0 else "assistant" for i in range(n)]
        chosen = [[sentence(s) for s in rng.sample(filler, min(len(filler), rng.randint(2, 3) if r == "user"
                                                            else rng.randint(4, 7)))] for r in roles]
        # planted sentences: spread over the turns of their role, at a random place in the turn
        placed: list[tuple[int, _Item]] = []
        offset = {r: rng.randrange(len(roles)) for r in ("user", "assistant")}
        count: dict[str, int] = defaultdict(int)
        for item in plan.get(ci, []):
            cands = [i for i, r in enumerate(roles) if r == item.role] or list(range(len(roles)))
            ti = cands[(offset[item.role] + count[item.role]) % len(cands)]
            count[item.role] += 1
            chosen[ti].insert(rng.randint(0, len(chosen[ti])), item.sentence)
            placed.append((ti, item))
        bodies = [compose(rng, s, r) for s, r in zip(chosen, roles, strict=True)]
        turns = _timed_turns(rng, start, roles, bodies, LAYOUTS[layout].seconds or bool(custom))
        conv = _finish(Conversation(spec["title"], spec.get("provider", "chatgpt"), _uuid(rng), layout, locale,
                                    turns, custom, spec.get("model"), OFFSETS[locale],
                                    reimported=LAYOUTS[layout].iso_frontmatter and rng.random() < 0.25))
        convs.append(conv)
        for ti, item in placed:
            t = turns[ti]
            if item.kind == "needle":
                truth["needles"].append({"id": item.id, "uid": t.uid, "queries": needles[item.id]["queries"]})
            else:
                truth["occurrences"].append({"kind": item.kind, "id": item.id, "uid": t.uid, "role": t.role,
                                             "time": t.time.isoformat(), "conv": ci,
                                             "surface": item.sentence.surfaces, "sentence": item.sentence.text})
    if quirks:
        convs += _quirks(rng, pack, day, attachments)
    for ci, conv in enumerate(convs):
        truth["conversations"].append(_conv_truth(ci, conv, "planted" if ci < len(specs) else "quirk"))
        truth["attachments"] += [{"uid": t.uid, "name": a.name, "mime": a.mime, "path": a.path, "exists": a.exists}
                                 for t in conv.turns for a in t.attachments]
    return convs, truth


def _quirks(rng: random.Random, pack: dict, after: dt.datetime, attachments: bool) -> list[Conversation]:
    filler = pack["filler"]["ru"]["быт"]
    out = []
    day = after + dt.timedelta(days=9)
    for k, (title, layout, locale) in enumerate(QUIRKS):
        start = day.replace(hour=rng.randint(8, 22), minute=rng.randint(0, 59), second=rng.randint(0, 59))
        day += dt.timedelta(days=1)
        bodies = [compose(rng, [sentence(s) for s in rng.sample(filler, 2)], "user"),
                  compose(rng, [sentence(s) for s in rng.sample(filler, 3)], "assistant")]
        turns = _timed_turns(rng, start, ["user", "assistant"], bodies, LAYOUTS[layout].seconds)
        conv = Conversation(title, "chatgpt", _uuid(rng), layout, locale, turns, None, "gpt-4o", OFFSETS[locale])
        if attachments and k < 3:
            _attach(conv, k)
        out.append(_finish(conv))
    return out


# A 1x1 PNG and a tiny SVG: real files of the types the plugin saves.
_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                     "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>\n'


def _attach(conv: Conversation, k: int) -> None:
    """Attachments of the kinds Nexus writes: an image, an SVG, a document the export left out."""
    base = f"{_folder(conv)}/{conv.provider}"
    user = conv.turns[0]
    if k == 0:
        user.attachments.append(Attachment("photo_of_the_shelf.png", "image/png", "70 Bytes",
                                           f"{base}/images/photo_of_the_shelf.png", True, _PNG))
    elif k == 1:
        user.attachments.append(Attachment("diagram.svg", "image/svg+xml", "95 Bytes",
                                           f"{base}/images/diagram.svg", True, _SVG))
    else:
        user.attachments.append(Attachment("notes.pdf", "application/pdf", "1.2 MB",
                                           f"{base}/documents/notes.pdf", False))


def _folder(conv: Conversation) -> str:
    return LAYOUTS[conv.layout].attachments


def _conv_truth(ci: int, conv: Conversation, kind: str) -> dict:
    layout = LAYOUTS[conv.layout]
    return {"index": ci, "kind": kind, "title": conv.title, "conversation_id": conv.conversation_id,
            "provider": conv.provider, "style": conv.layout, "plugin_version": layout.version,
            "locale": conv.locale, "custom_format": conv.custom, "utc_offset": conv.utc_offset,
            "header_seconds": bool(layout.seconds or conv.custom),
            "turns": [{"uid": t.uid, "role": t.role, "time": t.time.isoformat(), "text": t.text}
                      for t in conv.turns]}
