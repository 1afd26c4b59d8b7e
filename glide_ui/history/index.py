"""The history index: one SQLite row per result PNG, with full-text search on prompts.

SQLite from the standard library, in WAL mode (readers never wait for a writer; several
processes may share one outputs folder), FTS5 for the prompt search. The PNGs are the
truth: every column is read back from a PNG and its place in the folder (`read_entry`),
so the index can always be rebuilt from the folder and equals the one built as the
images came.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from glide_ui.errors import GlideUIError, RequestError
from glide_ui.history.faults import IndexDamaged, damaged, unwritable
from glide_ui.history.folder import CREATION_TIME_KEY, OutputsFolder, StoredFile, tab_of
from glide_ui.history.words import TOKENIZER, match_expression, searchable

log = logging.getLogger("glide_ui.history")

SCHEMA_VERSION = 2  # 2: prompts searched by `words.searchable` (unspaced scripts by character)
BUSY_TIMEOUT_S = 30.0  # another process writing: wait this long before giving up

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


class HistoryError(GlideUIError):
    """A history request that cannot be done (message for the user)."""


@dataclass(frozen=True)
class Entry:
    """One indexed image. `created` is Unix time (s); `size` in bytes; `id` is the row's
    (None before it is indexed)."""

    file: str
    owner: str
    tab: str
    pipeline: str
    prompt: str
    seed: int
    settings: dict[str, Any]
    models: dict[str, str]
    version: str
    created: float
    width: int
    height: int
    size: int
    mtime_ns: int
    id: int | None = field(default=None, compare=False)

    def created_at(self) -> datetime:
        """The creation time in the local time zone."""
        return datetime.fromtimestamp(self.created).astimezone()

    def to_dict(self) -> dict[str, Any]:
        """The entry as the HTTP API gives it (time as local ISO 8601; no owner)."""
        return {"id": self.id, "file": self.file, "tab": self.tab, "pipeline": self.pipeline,
                "prompt": self.prompt, "seed": self.seed, "settings": self.settings,
                "models": self.models, "version": self.version,
                "created": self.created_at().isoformat(timespec="seconds"),
                "width": self.width, "height": self.height}


_COLUMNS = [f.name for f in fields(Entry) if f.name != "id"]
_JSON_COLUMNS = ("settings", "models")


def read_entry(folder: OutputsFolder, stored: StoredFile) -> Entry | None:
    """The index row of a PNG in `folder`, from its header alone; None when it is not a
    PNG made here (no readable recipe)."""
    from glide_ui.images import open_image, read_recipe  # torch: not needed at start

    try:
        with open_image(folder.path(stored.file), decode=False) as image:
            recipe = read_recipe(image)
            stamp = image.info.get(CREATION_TIME_KEY)
            size = image.size
    except (RequestError, OSError):
        return None
    if recipe is None:
        return None
    return Entry(file=stored.file, owner=stored.user, tab=tab_of(recipe.pipeline),
                 pipeline=recipe.pipeline, prompt=recipe.prompt, seed=int(recipe.seed),
                 settings=_plain(recipe.settings), models=_plain(recipe.models),
                 version=str(recipe.version), created=_created(stamp, stored),
                 width=size[0], height=size[1], size=stored.size, mtime_ns=stored.mtime_ns)


def _plain(value: dict) -> dict:
    return json.loads(json.dumps(value, sort_keys=True))  # as the index stores it


def _created(stamp: Any, stored: StoredFile) -> float:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:  # no (readable) creation time: the file's
        return stored.mtime_ns / 1e9


@dataclass(frozen=True)
class Query:
    """What to list: `words` of the prompt (all must be found: see `words.match_expression`),
    one tab ('' = all), and days from `since` to `until` (local dates, both included)."""

    words: str = ""
    tab: str = ""
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class Page:
    """Page `number` (1-based) of `size` entries, newest first, of `total` matches."""

    entries: list[Entry]
    total: int
    number: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


class HistoryIndex:
    """The index database at `path` (created when missing), checked when opened: a damaged
    file is moved aside (kept, never deleted: `moved`, with what was `found`) and a new one
    made, for the caller to fill from the folder. Where no file can be written (a full
    disk, a read-only one) the index is kept in memory (`in_memory` says why). Safe to
    share between threads; other processes may open the same file.

    Raises sqlite3.Error or OSError when neither works.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.found = ""  # what was wrong with the file at `path` ("" when it was sound)
        self.moved: Path | None = None
        self.in_memory = ""  # why the index is in memory ("" while it is a file)
        self.generation = 0  # one more each time the database is replaced (renew, use_memory)
        self._lock = threading.RLock()
        self._inode: int | None = None  # of the file opened: is it still the one at `path`?
        try:
            self._db = self._open()
        except (OSError, sqlite3.Error) as error:
            if not unwritable(error):
                raise
            self._db = self._memory(error)

    def _open(self) -> sqlite3.Connection:
        """The file's database; a damaged file is moved aside first and a new one made."""
        try:
            return self._connect()
        except sqlite3.DatabaseError as error:
            if not damaged(error):
                raise  # e.g. locked by another process for longer than BUSY_TIMEOUT_S
            self.found, self.moved = str(error), self._move_aside()
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash of the app loses nothing
            _migrate(db)
            _check(db)
            self._inode = os.stat(self.path).st_ino
        except BaseException:
            db.close()
            raise
        return db

    def _memory(self, why: BaseException) -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        _migrate(db)
        self.in_memory = str(why) or type(why).__name__
        return db

    def _move_aside(self) -> Path | None:
        """Keep the file at `path` (and its -wal, -shm) as `path`.damaged-<time>; None when
        it is gone or is not the one opened (another process has moved it already)."""
        try:
            if self._inode is not None and os.stat(self.path).st_ino != self._inode:
                return None
        except FileNotFoundError:
            return None
        stamp, n = int(time.time()), 1
        moved = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        while any(Path(f"{moved}{suffix}").exists() for suffix in _FILES):
            n += 1
            moved = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
        for suffix in _FILES:
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.replace(Path(f"{moved}{suffix}"))
        return moved

    def renew(self, entries: Iterable[Entry]) -> Path | None:
        """Replace a file found damaged in use: move it aside, make a new one holding
        `entries`; returns where the old one went (None: another process had moved it).
        Raises sqlite3.Error or OSError when no new file can be made (`use_memory` then)."""
        with self._lock:
            self._db.close()
            moved = self._move_aside()
            self._db = self._connect()
            self.generation += 1
            self.replace_all(entries)
        return moved

    def use_memory(self, why: BaseException, entries: Iterable[Entry]) -> None:
        """Hold `entries` in memory from now on (the file cannot be written: `why`)."""
        with self._lock:
            self._db.close()
            self._db = self._memory(why)
            self.generation += 1
            self.replace_all(entries)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._checked_when_short_of_memory(), _transaction(self._db) as db:
            yield db

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock, self._checked_when_short_of_memory():
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def _checked_when_short_of_memory(self) -> Iterator[None]:
        """SQLite says "out of memory" where damaged full-text blocks claim huge sizes: a
        MemoryError is damage (IndexDamaged) when the check then fails, else raised as is."""
        try:
            yield
        except MemoryError:
            _check(self._db)
            raise

    # --- writing ---------------------------------------------------------------------------

    def add(self, entries: Iterable[Entry]) -> list[Entry]:
        """Insert `entries` (a file already indexed is updated), in one transaction;
        returns them with their ids."""
        with self._write() as db:
            return _insert(db, entries)

    def remove(self, files: Iterable[str]) -> int:
        """Drop the rows of `files`; returns how many there were."""
        with self._write() as db:
            return sum(db.execute("DELETE FROM images WHERE file = ?", (file,)).rowcount
                       for file in files)

    def replace_all(self, entries: Iterable[Entry]) -> list[Entry]:
        """Make the index hold exactly `entries`, in one transaction (readers see the old
        rows or the new ones); ids are new, given oldest first."""
        ordered = sorted(entries, key=lambda entry: (entry.created, entry.file))
        with self._write() as db:
            db.execute("DELETE FROM images")
            return _insert(db, ordered)

    # --- reading ---------------------------------------------------------------------------

    def signatures(self) -> dict[str, tuple[int, int]]:
        """file -> (size, mtime_ns) of every indexed file."""
        return {file: (size, mtime) for file, size, mtime in
                self._read("SELECT file, size, mtime_ns FROM images")}

    def entries(self) -> list[Entry]:
        """Every row, in file order."""
        return [_entry(row) for row in self._read(f"{_SELECT} ORDER BY file")]

    def get(self, owner: str, image_id: int) -> Entry | None:
        """Row `image_id` if it belongs to `owner`, else None."""
        rows = self._read(f"{_SELECT} WHERE id = ? AND owner = ?", (image_id, owner))
        return _entry(rows[0]) if rows else None

    def page(self, owner: str, query: Query = Query(), number: int = 1,
             size: int = 24) -> Page:
        """`owner`'s images matching `query`, newest first: page `number` of `size`
        (a number past the end gives the last page)."""
        where, params = _where(owner, query)
        with self._lock, self._checked_when_short_of_memory():
            total = self._db.execute(f"SELECT count(*) FROM images WHERE {where}",
                                     params).fetchone()[0]
            pages = max(1, -(-total // size))
            number = min(max(1, number), pages)
            rows = self._db.execute(
                f"{_SELECT} WHERE {where} ORDER BY created DESC, id DESC LIMIT ? OFFSET ?",
                [*params, size, (number - 1) * size]).fetchall()
        return Page([_entry(row) for row in rows], total, number, size)


_SELECT = f"SELECT {', '.join(_COLUMNS)}, id FROM images"
_FILES = ("", "-wal", "-shm")  # the database and the files SQLite keeps beside it in WAL mode


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite has not rolled it back itself (a full disk can)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate(db: sqlite3.Connection) -> None:
    """Create the tables, or recreate them empty when made by another schema version (the
    next `History.sync` fills them from the folder)."""
    with _transaction(db):  # checked inside: another process may be doing it too
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


def _check(db: sqlite3.Connection) -> None:
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


_STORED = [*_COLUMNS, "words"]
_UPSERT = (f"INSERT INTO images ({', '.join(_STORED)}) "
           f"VALUES ({', '.join('?' for _ in _STORED)}) ON CONFLICT(file) DO UPDATE SET "
           + ", ".join(f"{name} = excluded.{name}" for name in _STORED if name != "file"))


def _insert(db: sqlite3.Connection, entries: Iterable[Entry]) -> list[Entry]:
    added = []
    for entry in entries:
        db.execute(_UPSERT, _row(entry))
        row_id = db.execute("SELECT id FROM images WHERE file = ?", (entry.file,)).fetchone()[0]
        added.append(_with_id(entry, row_id))
    return added


def _row(entry: Entry) -> tuple:
    values = dict(zip(_COLUMNS, astuple(entry)[:len(_COLUMNS)], strict=True))
    for name in _JSON_COLUMNS:
        values[name] = json.dumps(getattr(entry, name), sort_keys=True)
    values["words"] = searchable(entry.prompt)
    return tuple(values[name] for name in _STORED)


def _entry(row: Sequence[Any]) -> Entry:
    values = dict(zip([*_COLUMNS, "id"], row, strict=True))
    for name in _JSON_COLUMNS:
        values[name] = json.loads(values[name])
    return Entry(**values)


def _with_id(entry: Entry, row_id: int) -> Entry:
    return Entry(**{**{name: getattr(entry, name) for name in _COLUMNS}, "id": row_id})


def _where(owner: str, query: Query) -> tuple[str, list[Any]]:
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
