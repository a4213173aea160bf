"""Shared fixtures: planted vaults from our generator (tests/vaultgen), copies of tests/fixtures.

Everything comes from the repository. Tests never edit tests/fixtures: every vault is generated
or copied into a temporary folder.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import vaultgen

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"  # copied into the repository: see tests/fixtures/SOURCES.md
DEV_PACK = vaultgen.DEV_PACK  # the content pack planted vaults are made from


def generate_vault(out: Path, *, truth: Path | None = None, scale: int | None = None, seed: int | None = None) -> None:
    """Write a planted vault (with ``truth`` JSON) or ``scale`` filler conversations into ``out``.

    Our own generator (``tests/vaultgen``), deterministic per seed (default 7).
    """
    vaultgen.generate(out, truth=truth, scale=scale, seed=seed)


@pytest.fixture(scope="session")
def planted_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A planted vault (generated once per session; do not modify: copy it) and its truth."""
    base = tmp_path_factory.mktemp("planted")
    vault, truth = base / "vault", base / "truth.json"
    generate_vault(vault, truth=truth)
    return vault, json.loads(truth.read_text(encoding="utf-8"))


@pytest.fixture
def planted_vault(planted_source: tuple[Path, dict], tmp_path: Path) -> tuple[Path, dict]:
    """A private, writable copy of the planted vault and its truth."""
    src, truth = planted_source
    dst = tmp_path / "vault"
    shutil.copytree(src, dst)
    return dst, truth


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures: the seed note and real Nexus exports (do not edit: copy before changing anything)."""
    return FIXTURES


@pytest.fixture
def seed_note(fixtures_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the seed conversation (mojibake as received)."""
    dst = tmp_path / "seed-conversation.md"
    shutil.copyfile(fixtures_dir / "seed-conversation.md", dst)
    return dst


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """An empty vault (only ``.obsidian``); modules that need content define their own."""
    v = tmp_path / "vault"
    (v / ".obsidian").mkdir(parents=True)
    return v


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    """Where a test's index goes (outside the vault, as by default)."""
    return tmp_path / "index"


@pytest.fixture(scope="session")
def served_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The bundled demo vault plus one planted note (``serve_helpers.PLANTED_NOTE``: the earliest use of
    «карта смысла», a needle, markup in its title), indexed with the default engine. Pristine: copy
    the vault and the index before changing either (``copy_served_demo``)."""
    from serve_helpers import plant

    from indexer.embed import embedder_for_index
    from indexer.pipeline import index_vault
    from indexer.store import open_index
    from interfaces.commands.demo import bundled_vault

    base = tmp_path_factory.mktemp("served-demo")
    vault, index = base / "vault", base / "index"
    shutil.copytree(bundled_vault(), vault)
    plant(vault)
    with open_index(index, create=True, notify=lambda m: None) as idx:
        index_vault(vault, idx, embedder_for_index(idx, None, None))
    return vault, index


def copy_served_demo(served_demo: tuple[Path, Path], dest: Path) -> tuple[Path, Path]:
    """A private, writable copy of ``served_demo`` (vault and index)."""
    vault, index = dest / "vault", dest / "index"
    shutil.copytree(served_demo[0], vault)
    shutil.copytree(served_demo[1], index, ignore=shutil.ignore_patterns("writer.lock"))
    return vault, index


@pytest.fixture(scope="session", autouse=True)
def _pack_figurativeness_model() -> Iterator[None]:
    """The metaphor engine scores uses with a stand-in that knows the planted pack (its images
    figurative, everything else literal), so engine, CLI, report and graph tests check mechanics
    whatever the learned model says; the learned model's quality is measured on its own in
    ``tests/eval/test_metaphor_quality.py`` (which scores with ``REAL_DEFAULT_SCORER``)."""
    from test_metaphor_support import pack_scorer

    from indexer.metaphors import engine

    scorer = pack_scorer()
    real = engine.default_scorer
    engine.default_scorer = lambda *args, **kwargs: scorer  # type: ignore[assignment]
    try:
        yield
    finally:
        engine.default_scorer = real  # type: ignore[assignment]
