"""The index's SQLite tables: the schema and its migration, the soundness check, and the
statements that write entries and select them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple
from datetime import date, datetime, timedelta
from typing import Any

from glide_ui.history.entry import COLUMNS, JSON_COLUMNS, Entry, Query
from glide_ui.history.faults import IndexDamaged
from glide_ui.history.words import TOKENIZER, match_expression, searchable

SCHEMA_VERSION = 2  # 2: prompts searched by `words.searchable` (unspaced scripts by character)

_SCHEMA = f"""
CREATE TABLE images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a stale id finds nothing
    file TEXT NOT NULL UNIQUE,   -- relative to the outputs folder, '/'-separated
    owner TEXT NOT NULL,         -- the user ('' without a login)
    tab TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    prompt TEXT NOT NULL,
    words TEXT NOT NULL,         -- the prompt as searched (words.searchable)
    seed INTEGER NOT NULL,
    settings TEXT NOT NULL,      -- JSON
    models TEXT NOT NULL,        -- JSON: model name -> checkpoint sha256
    version TEXT NOT NULL,
    created REAL NOT NULL,       -- Unix time, seconds
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size INTEGER NOT NULL,       -- bytes and mtime of the file: a changed file is re-read
    mtime_ns INTEGER NOT NULL
);
CREATE INDEX images_newest ON images(owner, created DESC, id DESC);
CREATE INDEX images_tab_newest ON images(owner, tab, created DESC, id DESC);
CREATE VIRTUAL TABLE prompts USING fts5(
    words, content='images', content_rowid='id', tokenize="{TOKENIZER}");
CREATE TRIGGER images_insert AFTER INSERT ON images BEGIN
    INSERT INTO prompts(rowid, words) VALUES (new.id, new.words);
END;
CREATE TRIGGER images_delete AFTER DELETE ON images BEGIN
    INSERT INTO prompts(prompts, rowid, words) VALUES ('delete', old.id, old.words);
END;
CREATE TRIGGER images_update AFTER UPDATE ON images BEGIN
    INSERT INTO prompts(prompts, rowid, words) VALUES ('delete', old.id, old.words);
    INSERT INTO prompts(rowid, words) VALUES (new.id, new.words);
END;
"""


SELECT = f"SELECT {', '.join(COLUMNS)}, id FROM images"
FILES = ("", "-wal", "-shm")  # the database and the files SQLite keeps beside it in WAL mode


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite has not rolled it back itself (a full disk can)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection) -> None:
    """Create the tables, or recreate them empty when made by another schema version (the
    next `History.sync` fills them from the folder)."""
    with transaction(db):  # checked inside: another process may be doing it too
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            old = db.execute("SELECT type, name FROM sqlite_master WHERE type IN "
                             "('table', 'trigger')").fetchall()
            last_id = _last_id(db) if ("table", "sqlite_sequence") in old else 0
            for kind, name in old:
                if not name.startswith(("sqlite_", "prompts_")):
                    db.execute(f'DROP {kind} IF EXISTS "{name}"')
            for statement in _statements(_SCHEMA):
                db.execute(statement)
            if last_id:  # ids go on from there: an id from before finds nothing
                db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('images', ?)",
                           (last_id,))
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _last_id(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'images'").fetchone()
    return row[0] if row else 0


def check(db: sqlite3.Connection) -> None:
    """Raise IndexDamaged unless every page of the file reads back sound and the full-text
    index agrees with the rows (a few ms for thousands of pictures)."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        first = next(line for line in "\n".join(problems).splitlines()
                     if not line.startswith("***"))  # not "*** in database main ***"
        raise IndexDamaged(f"database disk image is malformed: {first}")
    try:
        db.execute("INSERT INTO prompts(prompts) VALUES ('integrity-check')")
    except MemoryError:  # SQLite's answer to blocks whose sizes are noise
        raise IndexDamaged("database disk image is malformed: the full-text index's blocks "
                           "claim more memory than there is") from None


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of `script`, one by one (a trigger's body holds semicolons)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement.strip()
            statement = ""


_STORED = [*COLUMNS, "words"]
_UPSERT = (f"INSERT INTO images ({', '.join(_STORED)}) "
           f"VALUES ({', '.join('?' for _ in _STORED)}) ON CONFLICT(file) DO UPDATE SET "
           + ", ".join(f"{name} = excluded.{name}" for name in _STORED if name != "file"))


def insert(db: sqlite3.Connection, entries: Iterable[Entry]) -> list[Entry]:
    added = []
    for entry in entries:
        db.execute(_UPSERT, _row(entry))
        row_id = db.execute("SELECT id FROM images WHERE file = ?", (entry.file,)).fetchone()[0]
        added.append(_with_id(entry, row_id))
    return added


def _row(entry: Entry) -> tuple:
    values = dict(zip(COLUMNS, astuple(entry)[:len(COLUMNS)], strict=True))
    for name in JSON_COLUMNS:
        values[name] = json.dumps(getattr(entry, name), sort_keys=True)
    values["words"] = searchable(entry.prompt)
    return tuple(values[name] for name in _STORED)


def entry_of(row: Sequence[Any]) -> Entry:
    values = dict(zip([*COLUMNS, "id"], row, strict=True))
    for name in JSON_COLUMNS:
        values[name] = json.loads(values[name])
    return Entry(**values)


def _with_id(entry: Entry, row_id: int) -> Entry:
    return Entry(**{**{name: getattr(entry, name) for name in COLUMNS}, "id": row_id})


def where_clause(owner: str, query: Query) -> tuple[str, list[Any]]:
    clauses, params = ["owner = ?"], [owner]
    if query.tab:
        clauses.append("tab = ?")
        params.append(query.tab)
    if query.since is not None:
        clauses.append("created >= ?")
        params.append(_midnight(query.since))
    if query.until is not None:
        clauses.append("created < ?")
        params.append(_midnight(query.until + timedelta(days=1)))
    match = match_expression(query.words)
    if match:
        clauses.append("id IN (SELECT rowid FROM prompts WHERE prompts MATCH ?)")
        params.append(match)
    return " AND ".join(clauses), params


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day).timestamp()  # local time
