"""Invariant: any sequence of edits indexed incrementally gives the same index as one rebuild."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from index_helpers import check_consistent, run_index, snapshot

from indexer.embed import FakeEmbedder

WORDS = [
    "река",
    "мост",
    "карта",
    "смысл",
    "river",
    "bridge",
    "map",
    "the",
    "тишина",
    "код",
    "мысль",
    "memory",
]
FOLDERS = ["", "Nexus/chatgpt/2025/01", "Nexus/chatgpt/2025/02", "Notes", "Notes/deep/er"]

sentences = st.lists(st.sampled_from(WORDS), min_size=1, max_size=40).map(lambda ws: " ".join(ws) + ".")
turn_texts = st.lists(sentences, min_size=1, max_size=3).map("\n>\n> ".join)


def conversation(conv_id: str, turns: list[tuple[str, str]]) -> str:
    out = [
        "---",
        "nexus: nexus-ai-chat-importer",
        'plugin_version: "1.2.0"',
        "provider: chatgpt",
        f"conversation_id: {conv_id}",
        "create_time: 01.02.2025 at 10:00",
        "update_time: 01.02.2025 at 11:00",
        "---",
        "",
        f"# Title: Conversation {conv_id[:4]}",
        "",
        "Created: 01.02.2025 at 10:00",
        "",
    ]
    for i, (uid, text) in enumerate(turns):
        role, label = ("user", "User") if i % 2 == 0 else ("agent", "Assistant")
        out += [
            "",
            f">[!nexus_{role}] **{label}** - 01.02.2025 at 10:{i % 60:02d}",
            f"> {text}",
            f"<!-- UID: {uid} -->",
            "",
            "---",
        ]
    return "\n".join(out) + "\n"


def plain(sections: list[str]) -> str:
    return "\n\n".join(f"## {s.split()[0]}\n{s} #tag{len(s) % 3} [[Other]]" for s in sections) + "\n"


@st.composite
def edit_scripts(draw: st.DrawFn) -> list[tuple]:
    ops = draw(
        st.lists(
            st.sampled_from(["create", "create_plain", "append", "edit", "drop_turn", "rename", "delete"]),
            min_size=1,
            max_size=10,
        )
    )
    script = []
    for op in ops:
        script.append(
            (
                op,
                draw(st.integers(0, 1000)),
                draw(turn_texts),
                draw(st.sampled_from(FOLDERS)),
                draw(st.integers(1, 3)),
            )
        )
    return script


class Vault:
    """A model of the vault: path -> (kind, payload); writes files from it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.notes: dict[str, tuple[str, str, list]] = {}  # path -> (kind, conv_id, turns/sections)
        self.counter = 0
        (root / ".obsidian").mkdir(parents=True)

    def new_id(self) -> str:
        self.counter += 1
        return str(uuid.UUID(int=self.counter))

    def write(self, path: str) -> None:
        kind, conv_id, items = self.notes[path]
        text = conversation(conv_id, items) if kind == "conv" else plain(items)
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(text, encoding="utf-8")

    def apply(self, op: str, n: int, text: str, folder: str, k: int) -> None:
        paths = sorted(self.notes)
        target = paths[n % len(paths)] if paths else None
        name = f"{folder}/note {n}.md".lstrip("/")
        if op in ("create", "create_plain") or target is None:
            if name in self.notes:
                return
            if op == "create_plain":
                self.notes[name] = ("plain", "", [text.replace(">", "").replace("\n", " ")] * k)
            else:
                self.notes[name] = ("conv", self.new_id(), [(self.new_id(), text) for _ in range(k)])
            self.write(name)
            return
        kind, _, items = self.notes[target]
        if op == "append":
            items.append(
                (self.new_id(), text) if kind == "conv" else text.replace(">", "").replace("\n", " ")
            )
        elif op == "edit":
            i = n % len(items)
            items[i] = (items[i][0], text) if kind == "conv" else text.replace(">", "").replace("\n", " ")
        elif op == "drop_turn" and len(items) > 1:
            items.pop(n % len(items))
        elif op == "rename":
            if name in self.notes:
                return
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / target).rename(self.root / name)
            self.notes[name] = self.notes.pop(target)
            return
        elif op == "delete":
            (self.root / target).unlink()
            del self.notes[target]
            return
        self.write(target)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=edit_scripts(), batch=st.sampled_from([1, 3, 200]))
def test_incremental_equals_rebuild(script: list[tuple], batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        vault = Vault(root / "vault")
        emb = FakeEmbedder(max_tokens=24)  # a small window: long turns make several passages
        for step in script:
            vault.apply(*step)
            report = run_index(vault.root, root / "inc", emb, batch_notes=batch)
            assert report.notes_failed == 0, report.failures
        check_consistent(root / "inc")
        fresh = FakeEmbedder(max_tokens=24)
        run_index(vault.root, root / "full", fresh)
        assert snapshot(root / "inc") == snapshot(root / "full")
        shutil.rmtree(root / "full")
