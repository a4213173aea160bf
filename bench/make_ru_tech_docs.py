#!/usr/bin/env python3
"""Rebuild ``bench/data/ru-tech-docs.jsonl`` (see ``bench/data/SOURCES.md``) from git clones of
vuejs-translations/docs-ru and reactjs/ru.react.dev at the commits named there.

    python bench/make_ru_tech_docs.py VUE_GIT_DIR REACT_GIT_DIR

Keeps the prose paragraphs of each page (at most 40): no code, MDX components, tables, lists or
headings, nothing shorter than 80 characters or mostly in Latin script.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "ru-tech-docs.jsonl"
SOURCES = (("vuejs-translations/docs-ru", "ed53a951b62483bb8a9e70b98815edd7491b475c", r"^src/(guide|api)/.*\.md$"),
           ("reactjs/ru.react.dev", "2361adda823b4cb04f0c46aade0303d20e6cb8a4", r"^src/content/(learn|reference)/.*\.md$"))
MAX_PARAGRAPHS = 40
_BLOCKS = re.compile(r"<(Sandpack|DeepDive|Pitfall|Note|Diagram\w*|Recipes|Challenges)\b.*?</\1>", re.DOTALL)


def prose(text: str) -> list[str]:
    text = _BLOCKS.sub("", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    out = []
    for p in re.split(r"\n\s*\n", text):
        p = " ".join(line.strip() for line in p.splitlines())
        p = re.sub(r"\{[^}]*\}", " ", re.sub(r"<[^>]+>", " ", p))
        p = re.sub(r"[`*_]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", p))
        p = re.sub(r"\s+", " ", p).strip()
        if len(p) < 80 or p.startswith(("#", "=", "|", "import ", "[[", ":", "---", "-", ">")):
            continue
        cyrillic = sum("а" <= ch.lower() <= "я" or ch in "ёЁ" for ch in p)
        latin = sum(ch.isascii() and ch.isalpha() for ch in p)
        if cyrillic >= 2 * latin:
            out.append(p)
    return out


def pages(git_dir: str, repo: str, commit: str, pattern: str) -> list[dict]:
    git = ["git", f"--git-dir={git_dir}"]
    names = subprocess.run([*git, "ls-tree", "-r", "--name-only", commit], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    out = []
    for name in sorted(n for n in names if re.match(pattern, n)):
        text = subprocess.run([*git, "show", f"{commit}:{name}"], capture_output=True, text=True, check=True).stdout
        m = re.search(r"^(?:title:|#)\s*(.+)$", text, flags=re.MULTILINE)
        title = re.sub(r"\s*\{#[^}]*\}", "", m.group(1)).strip().strip("'\"") if m else name.rsplit("/", 1)[-1][:-3]
        paragraphs = prose(text)[:MAX_PARAGRAPHS]
        if len(paragraphs) >= 2:
            out.append({"source": f"https://github.com/{repo}/blob/{commit}/{name}", "title": title[:80],
                        "paragraphs": paragraphs})
    return out


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    rows = [p for git_dir, (repo, commit, pattern) in zip(sys.argv[1:], SOURCES, strict=True)
            for p in pages(git_dir, repo, commit, pattern)]
    with open(OUT, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(f"wrote {OUT}: {len(rows)} pages, {sum(len(r['paragraphs']) for r in rows)} paragraphs")


if __name__ == "__main__":
    main()
