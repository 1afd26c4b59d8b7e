"""Faults of the history index for the tests: the field folders (copied before use), every
kind of damage an index file can take, and a disk that refuses to grow the file.

A damage is done to the file as a crash or a bad disk leaves it: bytes overwritten on a
page of one table or index (the header sound), the file cut short, the full-text data's
blocks scrambled, the whole file garbage.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

FIELD = Path(__file__).resolve().parent / "fixtures" / "field_cases"
DAMAGED_FOLDER = FIELD / "outputs_damaged_index"  # the field case: images' page overwritten
SCHEMA_1_FOLDER = FIELD / "outputs_index_v1"  # an index made by schema 1 (3d0f738), sound
SCHEMA_1_PROMPTS = ("一只可爱的猫", "東京タワー at night", "a corgi on the beach")
HEADER_BYTES = 100  # of page 1: the header SQLite checks first


def copied(folder: Path, into: Path) -> Path:
    """A writable copy of a fixture folder under `into` (the committed copy stays as is)."""
    target = into / folder.name
    shutil.copytree(folder, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def fingerprints(folder: Path) -> dict[str, str]:
    """sha256 of every PNG under `folder`, by relative path."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*.png"))}


def _layout(index: Path) -> tuple[int, dict[str, int]]:
    """(page size, root page of every table and index)."""
    db = sqlite3.connect(index)
    try:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        roots = dict(db.execute("SELECT name, rootpage FROM sqlite_master WHERE rootpage > 0"))
    finally:
        db.close()
    return size, roots


def _overwrite_page(index: Path, page: int, size: int) -> None:
    start = (page - 1) * size + (HEADER_BYTES if page == 1 else 0)
    with open(index, "r+b") as file:
        file.seek(start)
        file.write(b"\xa5" * ((page * size) - start))


def _page_of(name: str) -> Callable[[Path], None]:
    def damage(index: Path) -> None:
        size, roots = _layout(index)
        _overwrite_page(index, 1 if name == "sqlite_master" else roots[name], size)

    return damage


def _cut_in_half(index: Path) -> None:
    os.truncate(index, index.stat().st_size // 2)


def scramble_full_text(index: Path, seed: int = 0) -> None:
    """Every page sound, the full-text index's blocks noise from `seed` (what quick_check
    cannot see). SQLite reads most noise as "malformed", some as sizes it runs out of
    memory for."""
    noise = random.Random(seed)
    db = sqlite3.connect(index)
    try:
        with db:
            for row, size in db.execute(
                    "SELECT id, length(block) FROM prompts_data WHERE id > 1").fetchall():
                db.execute("UPDATE prompts_data SET block = ? WHERE id = ?",
                           (noise.randbytes(size), row))
    finally:
        db.close()


def scramble_out_of_memory(index: Path, tries: int = 2000) -> None:
    """Scramble the full-text blocks with the first seed that SQLite then reads as sizes it
    runs out of memory for (the CI failure of stop 26: about one seed in fifty)."""
    trial = index.with_name(f"{index.name}.trial")
    for seed in range(tries):
        shutil.copyfile(index, trial)
        scramble_full_text(trial, seed)
        if _out_of_memory(trial):
            trial.unlink()
            scramble_full_text(index, seed)  # through SQLite: an open connection sees it
            return
    raise AssertionError(f"no scramble of {tries} made SQLite run out of memory")


def _out_of_memory(index: Path) -> bool:
    db = sqlite3.connect(index)
    try:
        db.execute("INSERT INTO prompts(prompts) VALUES ('integrity-check')")
    except MemoryError:
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        db.close()
    return False


def _garbage(index: Path) -> None:
    index.write_bytes(b"this is not a database" * 200)


DAMAGES: dict[str, Callable[[Path], None]] = {
    "images table page": _page_of("images"),
    "unique index page": _page_of("sqlite_autoindex_images_1"),
    "newest-first index page": _page_of("images_newest"),
    "full-text data page": _page_of("prompts_data"),
    "full-text index page": _page_of("prompts_idx"),
    "full-text sizes page": _page_of("prompts_docsize"),
    "full-text config page": _page_of("prompts_config"),
    "schema page": _page_of("sqlite_master"),
    "cut in half": _cut_in_half,
    "full-text blocks scrambled": scramble_full_text,
    "full-text blocks sized beyond memory": scramble_out_of_memory,
    "garbage": _garbage,
}
"""Each kind of damage, done in place to a closed index file (no -wal beside it)."""


def damage(index: Path, kind: str) -> bytes:
    """Do damage `kind` to `index`; returns the damaged file's bytes."""
    DAMAGES[kind](index)
    return index.read_bytes()


def refuse_growth(connect: Callable[..., sqlite3.Connection]) -> Callable[..., sqlite3.Connection]:
    """`sqlite3.connect` for a full disk: every database file opened may not grow by a
    page (SQLite's own `max_page_count`), so a write that needs one fails with SQLite's
    real "database or disk is full" (in memory is unlimited)."""

    def connected(database, *args, **kwargs) -> sqlite3.Connection:
        db = connect(database, *args, **kwargs)
        if str(database) != ":memory:":
            db.execute("PRAGMA max_page_count = 1")  # SQLite keeps it at the file's size
        return db

    return connected


@contextmanager
def full_disk(monkeypatch) -> Iterator[None]:
    """Within: the disk holding the index is full (see `refuse_growth`)."""
    with monkeypatch.context() as patched:
        patched.setattr(sqlite3, "connect", refuse_growth(sqlite3.connect))
        yield
