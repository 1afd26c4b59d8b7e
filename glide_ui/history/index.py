"""The history index: one SQLite row per result PNG, with full-text search on prompts.

SQLite from the standard library, in WAL mode (readers never wait for a writer; several
processes may share one outputs folder), FTS5 for the prompt search. The PNGs are the
truth: every column is read back from a PNG and its place in the folder (`read_entry`),
so the index can always be rebuilt from the folder and equals the one built as the
images came.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glide_ui.history.entry import Entry, HistoryError, Page, Query, read_entry
from glide_ui.history.faults import damaged, unwritable
from glide_ui.history.tables import (
    FILES,
    SELECT,
    check,
    entry_of,
    insert,
    migrate,
    transaction,
    where_clause,
)

log = logging.getLogger("glide_ui.history")

__all__ = ["BUSY_TIMEOUT_S", "Entry", "HistoryError", "HistoryIndex", "Page", "Query",
           "read_entry"]

BUSY_TIMEOUT_S = 30.0  # another process writing: wait this long before giving up


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
            migrate(db)
            check(db)
            self._inode = os.stat(self.path).st_ino
        except BaseException:
            db.close()
            raise
        return db

    def _memory(self, why: BaseException) -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        migrate(db)
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
        while any(Path(f"{moved}{suffix}").exists() for suffix in FILES):
            n += 1
            moved = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
        for suffix in FILES:
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
        with self._lock, self._checked_when_short_of_memory(), transaction(self._db) as db:
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
            check(self._db)
            raise

    # --- writing ---------------------------------------------------------------------------

    def add(self, entries: Iterable[Entry]) -> list[Entry]:
        """Insert `entries` (a file already indexed is updated), in one transaction;
        returns them with their ids."""
        with self._write() as db:
            return insert(db, entries)

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
            return insert(db, ordered)

    # --- reading ---------------------------------------------------------------------------

    def signatures(self) -> dict[str, tuple[int, int]]:
        """file -> (size, mtime_ns) of every indexed file."""
        return {file: (size, mtime) for file, size, mtime in
                self._read("SELECT file, size, mtime_ns FROM images")}

    def entries(self) -> list[Entry]:
        """Every row, in file order."""
        return [entry_of(row) for row in self._read(f"{SELECT} ORDER BY file")]

    def get(self, owner: str, image_id: int) -> Entry | None:
        """Row `image_id` if it belongs to `owner`, else None."""
        rows = self._read(f"{SELECT} WHERE id = ? AND owner = ?", (image_id, owner))
        return entry_of(rows[0]) if rows else None

    def page(self, owner: str, query: Query = Query(), number: int = 1,
             size: int = 24) -> Page:
        """`owner`'s images matching `query`, newest first: page `number` of `size`
        (a number past the end gives the last page)."""
        where, params = where_clause(owner, query)
        with self._lock, self._checked_when_short_of_memory():
            total = self._db.execute(f"SELECT count(*) FROM images WHERE {where}",
                                     params).fetchone()[0]
            pages = max(1, -(-total // size))
            number = min(max(1, number), pages)
            rows = self._db.execute(
                f"{SELECT} WHERE {where} ORDER BY created DESC, id DESC LIMIT ? OFFSET ?",
                [*params, size, (number - 1) * size]).fetchall()
        return Page([entry_of(row) for row in rows], total, number, size)
