"""How Nexus AI Chat Importer writes a conversation note: layouts, timestamps, file names.

Everything here follows the plugin's documented output for each release (1.0.2 headings through
1.6.x callouts), every moment.js locale family and custom timestamp format it writes, and its
file-name rules. It renders; it knows nothing about what the text says.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

# --------------------------------------------------------------------------- data


@dataclass
class Attachment:
    """A file attached to a turn (a nested or top-level ``nexus_attachment`` callout)."""

    name: str
    mime: str
    size: str  # as the plugin prints it, e.g. "573.25 KB"
    path: str  # vault-relative path of the file
    exists: bool  # whether the file is written into the vault (missing files get the ⚠️ form)
    data: bytes = b""


@dataclass
class Turn:
    role: str  # "user" | "assistant"
    uid: str
    time: dt.datetime  # local wall-clock time, exactly as written in the header
    text: str  # the message Markdown (what the parser must give back)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class Conversation:
    title: str
    provider: str
    conversation_id: str
    layout: str  # a key of LAYOUTS
    locale: str  # a key of LOCALES: the Obsidian UI language
    turns: list[Turn]
    custom: str | None = None  # a key of CUSTOM: message-timestamp format set in the plugin
    model: str | None = None
    utc_offset: int = 3  # hours east of UTC when the conversation happened
    reimported: bool = False  # an incremental re-import rewrote 'Last Updated:' (ISO in >= 1.3.0)


# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    version: str | None  # plugin_version written in the frontmatter (None before 1.1.0)
    legacy: str | None  # heading word for assistant turns in 1.0.x ("ChatGPT"/"Assistant"); None = callouts
    seconds: bool  # LTS (seconds) in body timestamps
    iso_frontmatter: bool  # create_time/update_time as ISO UTC
    gap: int  # blank lines after each turn
    blank: str  # how an empty content line is written
    nest: str  # prefix of a content line that already starts with '>'
    blank_after_frontmatter: bool
    models: bool  # 'models:' list in the frontmatter and the model in the assistant header
    chat_url: bool
    folder: str  # conversations folder
    attachments: str  # attachments folder
    raw_alias: bool  # aliases: "<title>" as typed (<= 1.2.0) instead of the sanitised alias


LAYOUTS: dict[str, Layout] = {
    # 1.0.2-1.0.5: headings, ChatGPT only, no plugin_version, no Chat URL
    "1.0.2": Layout(None, "ChatGPT", False, False, 2, "> ", "> ", True, False, False,
                    "Nexus AI Chat Imports", "Nexus AI Chat Imports/Attachments", True),
    # 1.0.8: provider-agnostic '#### Assistant' headings, Chat URL
    "1.0.8": Layout(None, "Assistant", False, False, 2, "> ", "> ", True, False, True,
                    "Nexus AI Chat Imports", "Nexus AI Chat Imports/Attachments", True),
    # a 1.0.x note migrated by 1.1.0 (plugin_version "1.0.x") whose '#### ChatGPT' headings 1.2.0 left alone
    "1.0.x": Layout("1.0.x", "ChatGPT", False, False, 2, "> ", "> ", True, False, True,
                    "Nexus AI Chat Imports", "Nexus AI Chat Imports/Attachments", False),
    "1.2.0": Layout("1.2.0", None, False, False, 4, "> ", "> ", True, False, True,
                    "Nexus/Conversations", "Nexus_attachments", True),
    "1.3.0": Layout("1.3.0", None, True, True, 0, "> ", "> ", True, False, True,
                    "Nexus/Conversations", "Nexus/Attachments", False),
    "1.3.2": Layout("1.3.2", None, True, True, 0, ">", ">", True, False, True,
                    "Nexus/Conversations", "Nexus/Attachments", False),
    "1.6.3": Layout("1.6.3", None, True, True, 0, ">", ">", False, True, True,
                    "Nexus/Conversations", "Nexus/Attachments", False),
}

# --------------------------------------------------------------------------- timestamps

_ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_RLM = "\u200f"


def _clock(when: dt.datetime, seconds: bool, *, h24: bool, pad: bool, sep: str = ":") -> str:
    hour = when.hour if h24 else (when.hour % 12 or 12)
    out = f"{hour:02d}" if pad else str(hour)
    out += f"{sep}{when.minute:02d}"
    if seconds:
        out += f"{sep}{when.second:02d}"
    return out


def _ampm(when: dt.datetime) -> str:
    return "AM" if when.hour < 12 else "PM"


# moment.js locale families: (date format, time format) as functions of the moment and seconds.
LOCALES = {
    "en": lambda w, s: f"{w:%m/%d/%Y} at {_clock(w, s, h24=False, pad=False)} {_ampm(w)}",
    "ru": lambda w, s: f"{w:%d.%m.%Y} at {_clock(w, s, h24=True, pad=False)}",
    "de": lambda w, s: f"{w:%d.%m.%Y} at {_clock(w, s, h24=True, pad=True)}",
    "fr": lambda w, s: f"{w:%d/%m/%Y} at {_clock(w, s, h24=True, pad=True)}",
    "nl": lambda w, s: f"{w:%d-%m-%Y} at {_clock(w, s, h24=True, pad=True)}",
    "ja": lambda w, s: f"{w:%Y/%m/%d} at {_clock(w, s, h24=True, pad=True)}",
    "zh": lambda w, s: f"{w:%Y/%m/%d} at {_clock(w, s, h24=True, pad=True)}",
    "sv": lambda w, s: f"{w:%Y-%m-%d} at {_clock(w, s, h24=True, pad=True)}",
    "hu": lambda w, s: f"{w:%Y.%m.%d.} at {_clock(w, s, h24=True, pad=False)}",
    "ko": lambda w, s: f"{w:%Y.%m.%d.} at {'오전' if w.hour < 12 else '오후'} {_clock(w, s, h24=False, pad=False)}",
    "id": lambda w, s: f"{w:%d/%m/%Y} at {_clock(w, s, h24=True, pad=True, sep='.')}",
    "ar": lambda w, s: (f"{w.day}{_RLM}/{w.month}{_RLM}/{w.year} at "
                        f"{_clock(w, s, h24=True, pad=True)}").translate(_ARABIC_DIGITS),
}
# Custom message-timestamp formats (the plugin setting); always with seconds.
CUSTOM = {
    "iso": lambda w: f"{w:%Y-%m-%d %H:%M:%S}",
    "us": lambda w: f"{w:%m/%d/%Y} at {_clock(w, True, h24=False, pad=False)} {_ampm(w)}",
    "eu": lambda w: f"{w:%d/%m/%Y} at {w:%H:%M:%S}",
    "de": lambda w: f"{w:%d.%m.%Y %H:%M:%S}",
    "jp": lambda w: f"{w:%Y/%m/%d %H:%M:%S}",
}
# Slash dates with the day first and no AM/PM: a reader cannot tell DD/MM from MM/DD without evidence.
DAY_FIRST_SLASH = {"fr", "id", "ar"}
CUSTOM_DAY_FIRST_SLASH = {"eu"}
# Typical UTC offsets, so ISO frontmatter times differ from local ones as they do in real vaults.
OFFSETS = {"ru": 3, "en": -5, "de": 1, "fr": 1, "nl": 1, "ja": 9, "zh": 8, "sv": 1, "hu": 1, "ko": 9,
           "id": 7, "ar": 3}


def stamp(when: dt.datetime, locale: str, seconds: bool) -> str:
    """A locale timestamp ``<L> at <LT|LTS>`` as Nexus writes it."""
    return LOCALES[locale](when, seconds)


def message_stamp(conv: Conversation, when: dt.datetime) -> str:
    """A turn header's timestamp: the custom format when one is set, else the locale's."""
    if conv.custom:
        return CUSTOM[conv.custom](when)
    return stamp(when, conv.locale, LAYOUTS[conv.layout].seconds)


def decidable(conv: Conversation) -> bool:
    """Whether a reader can tell this note's day from its month (no DD/MM vs MM/DD guess).

    Day-first slash dates are decided by a day > 12, a day equal to the month, or the ISO
    frontmatter time of >= 1.3.0 notes (local and UTC dates differ by at most a day).
    """
    slashed = conv.locale in DAY_FIRST_SLASH or conv.custom in CUSTOM_DAY_FIRST_SLASH
    if not slashed or LAYOUTS[conv.layout].iso_frontmatter:
        return True
    return any(t.time.day > 12 or t.time.day == t.time.month for t in conv.turns)


def iso_utc(when: dt.datetime, offset_hours: int) -> str:
    return (when - dt.timedelta(hours=offset_hours)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --------------------------------------------------------------------------- names


def file_name(title: str) -> str:
    """Nexus's file name for a title: accents dropped, unsafe characters removed, and the leading
    run of characters that are not ASCII word characters stripped (a leading Cyrillic or CJK word
    goes). '#', '^', '[' and ']' are kept, as in every release up to 1.6.x."""
    name = "".join(c for c in unicodedata.normalize("NFD", title) if not unicodedata.combining(c))
    name = re.sub(r'[<>:"/\\|?*\r\n]', "", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"^[^0-9A-Za-z_\s]+", "", name)
    name = " ".join(name.split())
    while len((name + ".md").encode("utf-8")) > 120:  # >= 1.6.3: at most 120 bytes with '.md'
        name = name[:-1].rstrip()
    return name or "Untitled"


def safe_alias(title: str) -> str:
    """The >= 1.3.0 ``aliases`` value: the same stripping as file names, YAML-quoted when needed."""
    alias = "".join(c for c in unicodedata.normalize("NFD", title) if not unicodedata.combining(c))
    alias = re.sub(r"[<>/\\|?*\r\n]", "", alias)
    alias = re.sub(r"^[^0-9A-Za-z_\s\"']+", "", alias).strip() or "Untitled"
    special = re.search(r"[:\[\]{}\"]", alias) or alias[0] in "!&*-?|>%@`#,'" or alias.lower() in {
        "true", "false", "null", "yes", "no", "on", "off"} or re.fullmatch(r"[\d.+-]+", alias)
    return "'" + alias.replace("'", "''") + "'" if special else alias


# --------------------------------------------------------------------------- rendering


def _content(text: str, first: str, blank: str, nest: str) -> list[str]:
    out = []
    for line in text.split("\n"):
        if not line.strip():
            out.append(blank)
        elif line.startswith(">"):
            out.append(nest + line)
        else:
            out.append(first + line)
    return out


def _attachment_lines(a: Attachment, layout: Layout, conv: Conversation, top_level: bool) -> list[str]:
    q = ">" if top_level else ">>"
    link = f"![[{a.path}]]" if a.mime.startswith("image/") else f"[[{a.path}]]"
    if not a.exists:  # >= 1.5.4 form for a file the export did not include
        url = chat_url(conv) or "https://chatgpt.com"
        return [f"{q}[!nexus_attachment] **{a.name}** *(missing)* ({a.mime})", q,
                f"{q} ⚠️ Not included in export. [Open original conversation]({url})"]
    head = f"{q}[!nexus_attachment] **{a.name}** ({a.mime}) - {a.size}"
    if layout.blank == ">":  # >= 1.3.2 puts an inner blank line before the link
        return [head, q, f"{q} {link}"]
    return [head, f"{q} {link}"]


def chat_url(conv: Conversation) -> str | None:
    if conv.provider == "claude":
        return f"https://claude.ai/chat/{conv.conversation_id}"
    if conv.provider == "chatgpt":
        old = LAYOUTS[conv.layout].version in (None, "1.0.x", "1.2.0")
        return ("https://chat.openai.com/c/" if old else "https://chatgpt.com/c/") + conv.conversation_id
    return None


def render_note(conv: Conversation) -> str:
    """The whole note, exactly as the plugin release ``conv.layout`` would write it."""
    layout = LAYOUTS[conv.layout]
    first, last = conv.turns[0].time, conv.turns[-1].time
    if layout.iso_frontmatter:
        created, updated = iso_utc(first, conv.utc_offset), iso_utc(last, conv.utc_offset)
    else:
        created, updated = stamp(first, conv.locale, False), stamp(last, conv.locale, False)
    alias = f'"{conv.title}"' if layout.raw_alias else safe_alias(conv.title)
    lines = ["---", "nexus: nexus-ai-chat-importer"]
    if layout.version:
        lines.append(f'plugin_version: "{layout.version}"')
    lines += [f"provider: {conv.provider}", f"aliases: {alias}", f"conversation_id: {conv.conversation_id}",
              f"create_time: {created}", f"update_time: {updated}"]
    if layout.models and conv.model:
        lines += ["models:", f'  - "{conv.model}"']
    lines.append("---")
    if layout.blank_after_frontmatter:
        lines.append("")
    last_updated = (iso_utc(last, conv.utc_offset) if conv.reimported and layout.iso_frontmatter
                    else stamp(last, conv.locale, layout.seconds))
    lines += [f"# Title: {conv.title}", "", f"Created: {stamp(first, conv.locale, layout.seconds)}",
              f"Last Updated: {last_updated}"]
    url = chat_url(conv)
    if layout.chat_url and url:
        lines.append(f"Chat URL: {url}")
    lines += ["", ""]
    for turn in conv.turns:
        lines += _render_turn(conv, layout, turn)
    return "\n".join(lines) + "\n"


def _render_turn(conv: Conversation, layout: Layout, turn: Turn) -> list[str]:
    ts = message_stamp(conv, turn.time)
    assistant = turn.role == "assistant"
    if layout.legacy:
        if assistant:
            out = [f"#### {layout.legacy}, on {ts};", *_content(turn.text, ">> ", ">> ", ">> ")]
        else:
            out = [f"### User, on {ts};", *_content(turn.text, "> ", "> ", "> ")]
        out.append(f"<!-- UID: {turn.uid} -->")
        return out + (["", "---"] if assistant else []) + [""] * layout.gap
    who = "User"
    if assistant:
        who = f"Assistant · {conv.model}" if layout.models and conv.model else "Assistant"
    kind = "nexus_agent" if assistant else "nexus_user"
    out = [f">[!{kind}] **{who}** - {ts}", *_content(turn.text, "> ", layout.blank, layout.nest)]
    if turn.attachments:
        if layout.version == "1.2.0":  # top level, after a blank line
            for a in turn.attachments:
                out += ["", *_attachment_lines(a, layout, conv, top_level=True)]
        else:  # nested, right after the text; several are joined by a blank quote line
            for i, a in enumerate(turn.attachments):
                out += ([layout.blank] if i else []) + _attachment_lines(a, layout, conv, top_level=False)
    out.append(f"<!-- UID: {turn.uid} -->")
    return out + (["", "---"] if assistant else []) + [""] * layout.gap


def note_path(conv: Conversation) -> str:
    """Vault-relative folder of the note (the file name is chosen by :func:`write_vault`)."""
    layout = LAYOUTS[conv.layout]
    first = conv.turns[0].time
    if layout.legacy or layout.version == "1.0.x":
        return f"{layout.folder}/{first:%Y}/{first:%m}"
    return f"{layout.folder}/{conv.provider}/{first:%Y}/{first:%m}"


def write_vault(convs: list[Conversation], out: Path) -> list[str]:
    """Write every conversation (and its attachment files) under ``out``; return the note paths.

    Names that collide in a folder (case-insensitively, as on macOS and Windows) get ' (1)',
    ' (2)', … as the plugin does.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / ".obsidian").mkdir(exist_ok=True)
    (out / ".obsidian" / "app.json").write_text("{}\n", encoding="utf-8")
    taken: set[str] = set()
    paths = []
    for conv in convs:
        folder = note_path(conv)
        base = file_name(conv.title)
        name, k = base, 0
        while f"{folder}/{name}".lower() in taken:
            k += 1
            name = f"{base} ({k})"
        taken.add(f"{folder}/{name}".lower())
        rel = f"{folder}/{name}.md"
        (out / folder).mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(render_note(conv), encoding="utf-8")
        paths.append(rel)
        for turn in conv.turns:
            for a in turn.attachments:
                if a.exists:
                    (out / a.path).parent.mkdir(parents=True, exist_ok=True)
                    (out / a.path).write_bytes(a.data)
    return paths
