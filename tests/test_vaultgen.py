"""Our test-vault generator (tests/vaultgen): deterministic, parseable as its truth, faithful to the pack."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
import vaultgen
from vaultgen.__main__ import main
from vaultgen.render import CUSTOM, LAYOUTS, LOCALES, file_name, safe_alias

from vault_schema.parse import load_note


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("scale", [None, 25])
def test_same_seed_same_vault_other_seed_another(tmp_path: Path, scale: int | None) -> None:
    a = vaultgen.generate(tmp_path / "a", scale=scale, seed=3)
    b = vaultgen.generate(tmp_path / "b", scale=scale, seed=3)
    c = vaultgen.generate(tmp_path / "c", scale=scale, seed=4)
    assert a == b and _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert a != c and _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_filler_vault_parses_as_its_truth_in_every_layout(tmp_path: Path) -> None:
    truth = vaultgen.generate(tmp_path / "v", scale=120, seed=5)
    convs = truth["conversations"]
    assert len(convs) == 120 and len(list((tmp_path / "v").rglob("*.md"))) == 120
    assert {c["style"] for c in convs} == set(LAYOUTS)
    assert {c["locale"] for c in convs} == set(LOCALES)
    assert {c["custom_format"] for c in convs} - {None} == set(CUSTOM)
    for conv in convs:
        note = load_note(tmp_path / "v", conv["path"])
        assert note.warnings == (), conv["path"]
        assert note.title == conv["title"] and note.conversation is not None
        assert note.conversation.plugin_version == conv["plugin_version"]
        got = [(t.uid, t.role, t.time, t.text) for t in note.turns]
        assert got == [(t["uid"], t["role"], dt.datetime.fromisoformat(t["time"]), t["text"]) for t in conv["turns"]]
    assert min(len(c["turns"]) for c in convs) >= 2 and max(len(c["turns"]) for c in convs) <= 14


def test_planted_truth_follows_the_pack(planted_source: tuple[Path, dict]) -> None:
    vault, truth = planted_source
    pack = vaultgen.load_pack()
    specs = pack["conversations"]
    text = {t["uid"]: t["text"] for c in truth["conversations"] for t in c["turns"]}
    role = {t["uid"]: t["role"] for c in truth["conversations"] for t in c["turns"]}
    conv_of = {t["uid"]: c["index"] for c in truth["conversations"] for t in c["turns"]}
    # every planted sentence is in its turn, with its phrases, for the scheduled role and conversation
    for o in truth["occurrences"]:
        assert o["sentence"] in text[o["uid"]].replace("**", "") and all(s in o["sentence"] for s in o["surface"])
        assert (role[o["uid"]], conv_of[o["uid"]]) == (o["role"], o["conv"])
    for kind, specs_of in (("image", pack["images"]), ("distractor", pack["distractors"])):
        for spec in specs_of:
            uses = sorted((o["conv"], o["role"]) for o in truth["occurrences"] if o["id"] == spec["id"])
            assert uses == sorted(map(tuple, spec["schedule"])), (kind, spec["id"])
    # images drift: Russian uses start with the 'early' sentences and end with the 'late' ones
    for img in pack["images"]:
        ru = [o for o in truth["occurrences"] if o["id"] == img["id"] and specs[o["conv"]].get("lang", "ru") == "ru"]
        ru.sort(key=lambda o: o["time"])
        strip = lambda s: s.replace("{{", "").replace("}}", "")
        assert ru[0]["sentence"] in map(strip, img["early"]) and ru[-1]["sentence"] in map(strip, img["late"])
    for needle in pack["needles"]:
        (got,) = [n for n in truth["needles"] if n["id"] == needle["id"]]
        assert needle["text"] in text[got["uid"]] and role[got["uid"]] == needle["role"]
        assert conv_of[got["uid"]] == needle["conv"] and got["queries"] == needle["queries"]
    # Nexus file-name quirks and attachments are in the vault
    names = {Path(c["path"]).name for c in truth["conversations"]}
    assert {"Untitled.md", "Untitled (1).md", "C# и ^якоря.md", "и иога.md"} <= names
    assert any(a["exists"] for a in truth["attachments"]) and not all(a["exists"] for a in truth["attachments"])
    for a in truth["attachments"]:
        assert (vault / a["path"]).is_file() == a["exists"]


@pytest.mark.parametrize(
    ("title", "name"),
    [  # examples documented for the plugin's generateFileName()
        ("Размышление о смысле жизни", "о смысле жизни"),
        ("Ёжик и йога", "и иога"),
        ("全球流动性指标体系", "Untitled"),
        ("C# tips: what is ^this?", "C# tips what is ^this"),
        ("Café résumé", "Cafe resume"),
    ],
)
def test_file_names_follow_nexus(title: str, name: str) -> None:
    assert file_name(title) == name


def test_safe_alias_quotes_what_yaml_would_misread() -> None:
    assert safe_alias("Размышление о смысле жизни") == "о смысле жизни"
    assert safe_alias("コード解説 HTML") == "HTML"
    assert safe_alias("Plan: [draft]") == "'Plan: [draft]'"
    assert safe_alias("yes") == "'yes'"


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path / "v"), "--truth", str(tmp_path / "t.json"), "--seed", "2"])
    truth = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    turns = sum(len(c["turns"]) for c in truth["conversations"])
    assert capsys.readouterr().out == (f"wrote {len(truth['conversations'])} notes, {turns} turns, "
                                       f"{len(truth['occurrences'])} planted occurrences to {tmp_path / 'v'}\n")
