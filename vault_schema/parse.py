"""Parse one Markdown note of an Obsidian vault into a :class:`~vault_schema.models.Note`.

Nexus AI Chat Importer notes (every plugin version, formats.md §0–1) become conversations
with turns; everything else is a plain note with links, tags, headings and block ids (§4).
The Nexus pass is a line-by-line scan with anchored regexes (linear, so 50 MB notes are fine);
markdown-it-py is only used for links/tags/headings, where code spans and blocks matter.

:func:`parse_note` never raises: whatever is wrong with the input becomes a
:class:`~vault_schema.models.ParseWarning` naming the path and line, and the rest goes on.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from vault_schema import files, markdown, mojibake
from vault_schema.errors import NoteReadError
from vault_schema.frontmatter import split_frontmatter
from vault_schema.models import Attachment, Conversation, Note, NoteKind, ParseWarning, Tag, Turn
from vault_schema.timestamps import DateOrder, ParsedTime, detect_date_order, parse_iso, parse_timestamp

MAX_NOTE_BYTES = 64 * 1024 * 1024
"""Default size cap of :func:`load_note`: larger files are skipped with a warning."""
_NAMESPACE = uuid.UUID("5b0c4f2e-2d5e-4c8e-9a53-6e0a1f7d3c21")
_MAX_HEADER_LEN = 2000
_MAX_WARNINGS_PER_CODE = 20
_ID_KEYS = ("conversation_id", "uid")  # 1.7-dev: configurable id property, `uid` the documented example  # header regexes only run on lines shorter than this (no pathological input)

HEAD_RE = re.compile(
    r"^>[ \t]?\[!nexus_(?P<kind>user|agent)\][+-]?[ \t]*"
    r"\*\*(?P<who>[^*\n·]*)(?:·(?P<model>[^*\n]*))?\*\*"
    r"(?:[ \t]*-[ \t]*(?P<ts>.*?))?[ \t]*$"
)
LEGACY_RE = re.compile(r"^(?P<h>#{3,4}) (?P<who>User|ChatGPT|Assistant|Claude), on (?P<ts>[^;\n]+);[ \t]*$")
UID_RE = re.compile(r"^<!-- UID: (?P<uid>.*?) -->[ \t]*$")
NESTED_RE = re.compile(
    r"^(?:>[ \t]?){1,3}\[!nexus_(?P<type>attachment|artifact|prompt|canvas)\](?P<fold>[+-]?)[ \t]*(?P<title>.*)$"
)
_LEGACY_ATTACHMENT_RE = re.compile(r"^\*\*📎 Attachment:\*\*[ \t]*(?P<title>.*)$")
_TITLE_RE = re.compile(r"^# Title: (.*?)\s*$")
_CREATED_RE = re.compile(r"^Created: (.*?)\s*$")
_UPDATED_RE = re.compile(r"^Last Updated: (.*?)\s*$")
_URL_RE = re.compile(r"^Chat URL: (\S+)\s*$")
_NO_CONTENT = {"[No content found]", "[No content]", "[No text content]", "(Empty message)"}
_SEPARATOR_RE = re.compile(r"^(?:---|\*\*\*|___)[ \t]*$")
_QUOTE_LEVEL_RE = re.compile(r"^>[ \t]?")


# ----------------------------------------------------------------------------- small helpers


def _stem(path: str) -> str:
    name = PurePosixPath(path).name
    return name[:-3] if name.lower().endswith(".md") else name


def _depth(line: str) -> int:
    """Quote depth: the number of leading ``>`` (each optionally followed by one space or tab)."""
    d = i = 0
    n = len(line)
    while i < n and line[i] == ">":
        d += 1
        i += 1
        if i < n and line[i] in " \t":
            i += 1
    return d


def _strip_levels(line: str, k: int) -> str:
    if k == 1:
        if line[:1] != ">":
            return line
        return line[2:] if line[1:2] in (" ", "\t") else line[1:]
    for _ in range(k):
        if not line.startswith(">"):
            break
        line = line[2:] if len(line) > 1 and line[1] in " \t" else line[1:]
    return line


def _clean_text(lines: list[str], collapse: bool) -> str:
    text = "\n".join(lines).strip()
    if collapse:
        text = re.sub(r"\n{3,}", "\n\n", text)
    return "" if text in _NO_CONTENT else text


def derive_turn_uid(conversation_id: str, position: int, text: str) -> str:
    """Stable id for a turn without ``<!-- UID -->``: same conversation, place and text → same id."""
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
    return str(uuid.uuid5(_NAMESPACE, f"turn\x1f{conversation_id}\x1f{position}\x1f{digest}"))


def _derive_conversation_id(first_uid: str | None, content: str) -> str:
    """Body-only notes: from the first UID (survives renames and moves), else from the content."""
    if first_uid:
        return str(uuid.uuid5(_NAMESPACE, f"conversation\x1f{first_uid}"))
    digest = hashlib.sha256(content.encode("utf-8", "replace")).hexdigest()
    return str(uuid.uuid5(_NAMESPACE, f"conversation-content\x1f{digest}"))


def _str_list(value: Any, split: bool = False) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if item is None or isinstance(item, dict | list):
            continue
        s = str(item).strip()
        parts = re.split(r"[,\s]+", s) if split else [s]
        out.extend(p for p in parts if p)
    return out


# ----------------------------------------------------------------------------- decoding


@dataclass
class _Ctx:
    path: str
    warnings: list[ParseWarning] = field(default_factory=list)

    counts: dict[str, int] = field(default_factory=dict)

    def warn(self, line: int | None, code: str, message: str) -> None:
        """Record a warning; past 20 of one kind they are only counted (see :meth:`final`)."""
        n = self.counts[code] = self.counts.get(code, 0) + 1
        if n <= _MAX_WARNINGS_PER_CODE:
            self.warnings.append(ParseWarning(self.path, line, code, message))

    def final(self) -> tuple[ParseWarning, ...]:
        extra = [
            ParseWarning(self.path, None, code, f"… and {n - _MAX_WARNINGS_PER_CODE} more {code!r} warnings")
            for code, n in self.counts.items()
            if n > _MAX_WARNINGS_PER_CODE
        ]
        return tuple(self.warnings + extra)


def _decode(data: bytes | str, ctx: _Ctx) -> str | None:
    """Text of the note, or None for binary content."""
    if isinstance(data, str):
        text = data
        if re.search(r"[\ud800-\udfff]", text):
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            ctx.warn(None, "invalid-unicode", "text holds lone surrogates; replaced with U+FFFD")
        if "\x00" in text:
            ctx.warn(text.count("\n", 0, text.index("\x00")) + 1, "binary", "contains NUL characters: not a text note")
            return None
        return text.removeprefix("\ufeff")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    nul = data.find(b"\x00")
    if nul >= 0:
        ctx.warn(data.count(b"\n", 0, nul) + 1, "binary", "contains NUL bytes: not a text note; skipped")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        ctx.warn(line, "invalid-utf8", f"invalid UTF-8 (byte 0x{data[exc.start]:02x}); undecodable bytes replaced")
        return data.decode("utf-8-sig", "replace")


# ----------------------------------------------------------------------------- conversations


@dataclass
class _TurnDraft:
    role: str
    model: str | None
    ts: str | None
    line: int  # 1-based header line
    legacy: bool = False
    lines: list[str] = field(default_factory=list)
    uid: str | None = None


def _build_turn_text(draft: _TurnDraft) -> tuple[str, tuple[Attachment, ...], str]:
    """(clean text, attachments, text with one quote level removed for the link/tag scan)."""
    raw = draft.lines
    base = 2 if draft.legacy and draft.role == "assistant" else 1
    one = [_strip_levels(x, base) for x in raw]
    scan_text = "\n".join(one)
    attachments: list[Attachment] = []
    text_lines: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        line = raw[i]
        m = NESTED_RE.match(line) if not draft.legacy and "[!nexus_" in line[:16] else None
        if m:
            d = _depth(line)
            body: list[str] = []
            j = i + 1
            while j < n:
                nxt = raw[j]
                dn = _depth(nxt)
                if dn < d or (dn == d and "[!nexus_" in nxt[:16] and NESTED_RE.match(nxt)):
                    break
                body.append(_strip_levels(nxt, d))
                j += 1
            title = m.group("title").replace("**", "").strip()
            attachments.append(Attachment(m.group("type"), title, "\n".join(body).strip(), draft.line + 1 + i))
            i = j
            continue
        stripped = one[i]
        lm = _LEGACY_ATTACHMENT_RE.match(stripped) if draft.legacy and "📎" in stripped else None
        if lm:
            attachments.append(Attachment("attachment", lm.group("title").replace("**", "").strip(), "", draft.line + 1 + i))
        else:
            text_lines.append(stripped)
        i += 1
    return _clean_text(text_lines, bool(attachments)), tuple(attachments), scan_text


def _scan_conversation(lines: list[str], start: int, ctx: _Ctx) -> tuple[list[_TurnDraft], list[str]]:
    """Split the body into turn drafts and the lines outside turns (turn lines blanked)."""
    drafts: list[_TurnDraft] = []
    outside: list[str] = []
    cur: _TurnDraft | None = None
    for i in range(start, len(lines)):
        line = lines[i]
        first = line[:1]
        head = None
        if first == ">" and "[!nexus_" in line[:12] and len(line) < _MAX_HEADER_LEN:
            head = HEAD_RE.match(line)
            if head:
                role = "user" if head.group("kind") == "user" else "assistant"
                model = (head.group("model") or "").strip() or None
                cur = _TurnDraft(role, model, head.group("ts"), i + 1)
                drafts.append(cur)
                outside.append("")
                continue
        elif first == "#" and ", on " in line[:40] and len(line) < _MAX_HEADER_LEN:
            legacy = LEGACY_RE.match(line)
            if legacy:
                role = "user" if legacy.group("who") == "User" else "assistant"
                cur = _TurnDraft(role, None, legacy.group("ts"), i + 1, legacy=True)
                drafts.append(cur)
                outside.append("")
                continue
        elif first == "<" and line.startswith("<!-- UID:"):
            m = UID_RE.match(line)
            if m:
                outside.append("")
                if cur is None:
                    ctx.warn(i + 1, "orphan-uid", f"UID comment {m.group('uid')!r} belongs to no turn; ignored")
                else:
                    cur.uid = m.group("uid").strip()
                    cur = None
                continue
        if cur is not None:
            if _SEPARATOR_RE.match(line):
                ctx.warn(cur.line, "missing-uid", "turn has no <!-- UID --> line; a stable id was derived")
                cur = None
                outside.append("")
                continue
            cur.lines.append(line)
            outside.append("")
        else:
            outside.append("" if _SEPARATOR_RE.match(line) else line)
    if cur is not None:
        ctx.warn(cur.line, "missing-uid", "last turn has no <!-- UID --> line; a stable id was derived")
    return drafts, outside


def _has_meridiem(samples: list[str]) -> bool:
    return any(re.search(r"\d\s*(?:[AaPp]\.?[Mm]\.?)\s*$|오[전후]|[上下]午", s) for s in samples)


def _parse_conversation(
    lines: list[str], start: int, fm: dict[str, Any], ctx: _Ctx
) -> tuple[Conversation, list[str], list[tuple[int, str]]]:
    drafts, outside = _scan_conversation(lines, start, ctx)
    header: dict[str, tuple[int, str]] = {}
    first_turn = drafts[0].line if drafts else len(lines) + 1
    for idx, line in enumerate(outside[: first_turn - 1 - start]):
        for key, rx in (("title", _TITLE_RE), ("created", _CREATED_RE), ("updated", _UPDATED_RE), ("url", _URL_RE)):
            if key not in header and line[:1] in "#CLU":
                m = rx.match(line)
                if m:
                    header[key] = (start + idx + 1, m.group(1))

    # Times: the frontmatter's ISO create_time (UTC) and same-note samples decide DD/MM vs MM/DD.
    fm_times = {k: str(fm[k]) for k in ("create_time", "update_time") if fm.get(k) not in (None, "")}
    reference = None
    iso = {k: parse_iso(v) for k, v in fm_times.items()}
    if iso.get("create_time") and iso["create_time"].value:
        reference = iso["create_time"].value
    turn_samples = [d.ts for d in drafts if d.ts]
    header_samples = [v for k, (_, v) in header.items() if k in ("created", "updated")]
    header_samples += [v for k, v in fm_times.items() if not iso[k].value]
    turn_order = detect_date_order(turn_samples, reference)
    header_order = detect_date_order(header_samples, reference)
    if _has_meridiem(turn_samples) == _has_meridiem(header_samples):
        turn_order = turn_order or header_order
        header_order = header_order or turn_order

    ambiguous: list[tuple[int, str]] = []

    def when(raw: str | None, line: int | None, order: DateOrder | None, what: str) -> dt.datetime | None:
        if not raw:
            return None
        parsed: ParsedTime = parse_timestamp(raw, order)
        if parsed.value is None:
            ctx.warn(line, "bad-timestamp", f"cannot read the {what} time {raw.strip()!r}")
        elif parsed.ambiguous:
            ambiguous.append((line or 0, raw.strip()))
        return parsed.value

    def fm_time(key: str) -> dt.datetime | None:
        if key not in fm_times:
            return None
        if iso[key].value:
            return iso[key].value
        line = next((i + 1 for i in range(1, start) if lines[i].startswith(key + ":")), None)
        return when(fm_times[key], line, header_order, f"frontmatter {key}")

    created = fm_time("create_time")
    updated = fm_time("update_time")
    header_created = when(header["created"][1], header["created"][0], header_order, "Created") \
        if "created" in header else None
    if created is None:
        created = header_created
    if updated is None and "updated" in header:
        updated = when(header["updated"][1], header["updated"][0], header_order, "Last Updated")
    created_utc = created if iso.get("create_time") and iso["create_time"].value else None
    updated_utc = updated if iso.get("update_time") and iso["update_time"].value else None

    conv_id = next((str(fm[k]).strip() for k in _ID_KEYS if fm.get(k) not in (None, "")), "")
    id_derived = not conv_id
    if id_derived:
        first_uid = next((d.uid for d in drafts if d.uid and d.uid != "unknown"), None)
        conv_id = _derive_conversation_id(first_uid, "\n".join(lines[start:]))

    turns: list[Turn] = []
    seen: set[str] = set()
    turn_scans: list[tuple[int, str]] = []
    models: list[str] = _str_list(fm.get("models"))
    for pos, d in enumerate(drafts):
        text, attachments, scan_text = _build_turn_text(d)
        turn_scans.append((d.line + 1, scan_text))
        uid, derived = d.uid, False
        if uid in seen:
            ctx.warn(d.line, "duplicate-uid", f"UID {uid!r} appears twice in the note; a stable id was derived")
            uid = None
        if not uid or uid == "unknown":
            uid, derived = derive_turn_uid(conv_id, pos, text), True
        seen.add(uid)
        if d.model and d.model not in models:
            models.append(d.model)
        turns.append(
            Turn(uid=uid, role=d.role, model=d.model, time=when(d.ts, d.line, turn_order, "turn"),  # type: ignore[arg-type]
                 text=text, attachments=attachments, position=pos, line=d.line, uid_derived=derived)
        )
    if ambiguous:
        line, sample = min(ambiguous)
        ctx.warn(line or None, "ambiguous-date",
                 f"day/month order of {sample!r} cannot be told from this note; read as day/month "
                 f"({len(ambiguous)} timestamp(s) affected)")

    # ISO frontmatter times are UTC, header and turn times local: the same instant seen both ways
    # gives the UTC offset, and created/updated become local like the turns (comparable).
    first_turn = next((t.time for t in turns if t.time is not None), None)
    offset = utc_offset(created_utc, header_created) or utc_offset(created_utc, first_turn, slack=300)
    if created_utc is not None:
        created = created_utc + dt.timedelta(minutes=offset) if offset is not None else None
    if updated_utc is not None:
        updated = updated_utc + dt.timedelta(minutes=offset) if offset is not None else None

    title = header["title"][1] if "title" in header else str(fm.get("title") or "").strip() or _stem(ctx.path)
    conv = Conversation(
        conversation_id=conv_id,
        title=title,
        provider=str(fm["provider"]) if fm.get("provider") else None,
        plugin_version=str(fm["plugin_version"]) if fm.get("plugin_version") else None,
        created=created,
        updated=updated,
        created_utc=created_utc if created_utc is not None else _minus(created, offset),
        updated_utc=updated_utc if updated_utc is not None else _minus(updated, offset),
        utc_offset=offset,
        url=header["url"][1] if "url" in header else None,
        models=tuple(models),
        turns=tuple(turns),
        id_derived=id_derived,
    )
    return conv, outside, turn_scans


def utc_offset(utc: dt.datetime | None, local: dt.datetime | None, *, slack: int = 120) -> int | None:
    """Minutes east of UTC that turn ``utc`` into ``local`` (the same moment), when they plausibly
    are one: a multiple of 15 minutes within ±14 h, give or take ``slack`` seconds (minute-precision
    headers, a first message a little after the conversation started)."""
    if utc is None or local is None:
        return None
    seconds = (local - utc).total_seconds()
    minutes = round(seconds / 900) * 15
    if abs(minutes) > 14 * 60 or abs(seconds - minutes * 60) > slack:
        return None
    return minutes


def _minus(local: dt.datetime | None, offset: int | None) -> dt.datetime | None:
    return local - dt.timedelta(minutes=offset) if local is not None and offset is not None else None


# ----------------------------------------------------------------------------- notes


def _has_turns(lines: list[str], start: int) -> bool:
    for i in range(start, len(lines)):
        line = lines[i]
        if line[:1] == ">" and "[!nexus_" in line[:12] and len(line) < _MAX_HEADER_LEN and HEAD_RE.match(line):
            return True
        if line[:1] == "#" and ", on " in line[:40] and len(line) < _MAX_HEADER_LEN and LEGACY_RE.match(line):
            return True
    return False


def _kind(fm: dict[str, Any], lines: list[str], start: int) -> NoteKind:
    """Detect by frontmatter first (formats.md §2.8), then by turn headers in the body."""
    if str(fm.get("tropegraph") or "").strip().lower() == "report":
        return "tropegraph-report"
    nexus = str(fm.get("nexus") or "").strip().lower()
    if nexus and "artifact_id" in fm:
        return "artifact"
    if "importdate" in fm or "totalSuccessfulImports" in fm:
        return "import-report"
    if nexus == "nexus-ai-chat-importer" and any(fm.get(k) for k in _ID_KEYS):
        return "conversation"
    if _has_turns(lines, start):  # body-only notes, or a custom 1.7-dev id property
        return "conversation"
    return "import-report" if nexus else "note"  # 1.0.2-1.0.5 reports: `nexus: Nexus AI Chat Importer`


def _fm_tags(fm: dict[str, Any], lines: list[str], end: int) -> list[Tag]:
    out: list[Tag] = []
    for key in ("tags", "tag"):
        if key not in fm:
            continue
        line = next((i + 1 for i in range(1, end) if lines[i].startswith(key)), None)
        for name in _str_list(fm[key], split=True):
            name = name.lstrip("#")
            if name:
                out.append(Tag(name=name, source="frontmatter", line=line))
    return out


def _parse(data: bytes | str, path: str) -> Note:
    ctx = _Ctx(path)
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    sha = hashlib.sha256(raw).hexdigest()
    text = _decode(data, ctx)
    if text is None:
        return Note(path=path, kind="empty", title=_stem(path), warnings=ctx.final(), sha256=sha)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text, bad, first_bad = mojibake.repair(text)
    if bad:
        ctx.warn(text.count("\n", 0, first_bad) + 1, "mojibake-repaired",
                 f"text was UTF-8 mis-decoded as Mac Roman/Windows-1252/Latin-1 ({bad} characters "
                 f"from this line on); repaired")
    if not text.strip():
        ctx.warn(1, "empty", "note is empty")
        return Note(path=path, kind="empty", title=_stem(path), warnings=ctx.final(),
                    mojibake_repaired=bool(bad), sha256=sha)

    lines = text.split("\n")
    fmr = split_frontmatter(lines)
    if fmr.error:
        ctx.warn(fmr.error[0], "bad-frontmatter", fmr.error[1])
    for key, first, again in fmr.duplicates:
        ctx.warn(again, "duplicate-frontmatter-key",
                 f"frontmatter key {key!r} is given twice (lines {first} and {again}); Obsidian rejects such "
                 "properties: keep one (tropegraph uses the last)")
    fm, start = fmr.data, fmr.body_start
    kind = _kind(fm, lines, start)
    body = "\n".join(lines[start:])

    conversation = None
    tags = _fm_tags(fm, lines, start)
    if kind == "conversation":
        conversation, outside, turn_scans = _parse_conversation(lines, start, fm, ctx)
        scans = [markdown.scan("\n".join(outside).rstrip(), start + 1, "body")]
        # Chat content: links and tags only (headings inside a message are not note structure);
        # markdown-it only where something could be found, a linear scan when the note is huge.
        big = len(text) > markdown.FAST_SCAN_BYTES
        for first, t in turn_scans:
            if big:
                scans.append(markdown.scan_fast(t, first, "turn", headings=False))
            elif markdown.needs_scan(t):
                scans.append(markdown.scan(t, first, "turn", headings=False))
        title = conversation.title
    else:
        scans = [markdown.scan(body, start + 1, "body")]
        title = _stem(path)

    aliases = tuple(_str_list(fm.get("aliases")) + _str_list(fm.get("alias")))
    return Note(
        path=path,
        kind=kind,
        title=title,
        frontmatter=fm,
        aliases=aliases,
        tags=tuple(tags + [t for s in scans for t in s.tags]),
        links=tuple(x for s in scans for x in s.links),
        headings=tuple(h for s in scans for h in s.headings),
        block_ids=tuple(b for s in scans for b in s.block_ids),
        body=body,
        conversation=conversation,
        warnings=ctx.final(),
        mojibake_repaired=bool(bad),
        sha256=sha,
    )


def parse_note(data: bytes | str, path: str) -> Note:
    """Parse a note's content; ``path`` is its vault-relative POSIX path. Never raises."""
    try:
        return _parse(data, path)
    except (RecursionError, MemoryError, ValueError, TypeError, LookupError, AttributeError,
            UnicodeError, OverflowError, IndexError) as exc:  # a bug must not stop a vault scan
        warning = ParseWarning(path, None, "parser-error", f"could not parse the note ({type(exc).__name__}: {exc})")
        return Note(path=path, kind="empty", title=_stem(path), warnings=(warning,))


def read_error(relpath: str, exc: OSError) -> NoteReadError:
    """The :class:`NoteReadError` (path + reason + fix) for an ``OSError`` reading a note."""
    if isinstance(exc, files.NotRegularFile):
        if exc.kind == "a folder":
            return NoteReadError(relpath, "is a directory, not a note")
        return NoteReadError(relpath, f"{exc.strerror}; skipped (only plain files are read)")
    if isinstance(exc, files.OutsideLink):
        return NoteReadError(relpath, f"is {exc.strerror}; skipped (only files inside the vault are read)")
    if isinstance(exc, FileNotFoundError):
        return NoteReadError(relpath, "no such file (it may have been moved or deleted)")
    if isinstance(exc, PermissionError):
        return NoteReadError(relpath, "permission denied; check the file's read permissions")
    if isinstance(exc, IsADirectoryError):
        return NoteReadError(relpath, "is a directory, not a note")
    return NoteReadError(relpath, f"cannot be read ({exc.strerror or exc})")


def load_note(root: Path, relpath: str, *, max_bytes: int = MAX_NOTE_BYTES) -> Note:
    """Read ``root/relpath`` and parse it. Raises :class:`NoteReadError` only if it cannot be read
    (it vanished, permission denied, a FIFO/socket/device, a symlink leading out of the vault).

    Only regular files are read, never past ``max_bytes`` (see ``vault_schema.files``)."""
    full = Path(root) / relpath
    try:
        files.check_regular(full, os.stat(full))
        target = files.outside_link(Path(root), relpath)
        if target is not None:
            raise files.OutsideLink(full, target)
        data = files.read_bytes(full, max_bytes=max_bytes)
    except files.TooLarge as exc:
        warning = ParseWarning(relpath, None, "too-large",
                               f"note is {exc.size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit; skipped")
        return Note(path=relpath, kind="empty", title=_stem(relpath), warnings=(warning,))
    except OSError as exc:
        raise read_error(relpath, exc) from exc
    return parse_note(data, relpath)
