"""History: the outputs folder and its index together (what the app, the CLI and Python use)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from glide_ui.history.faults import damaged, unwritable
from glide_ui.history.folder import OutputsFolder, StoredFile
from glide_ui.history.index import Entry, HistoryError, HistoryIndex, Page, Query, read_entry
from glide_ui.recipe import Recipe

log = logging.getLogger("glide_ui.history")
T = TypeVar("T")

INDEX_NAME = "history.sqlite3"
LEFTOVER_AGE_S = 3600.0  # a temporary file this old belongs to a write that never finished


@dataclass(frozen=True)
class SyncReport:
    """What a sync or rebuild did: PNGs indexed (new or changed), rows dropped (files gone),
    PNGs in the layout that carry no readable recipe (left out)."""

    added: int
    removed: int
    skipped: int


class History:
    """Result PNGs under `root` (see `history.folder` for the layout) and their index
    (`root`/history.sqlite3 unless `index_path` says otherwise).

    Every method that reads or changes a picture takes the user it is done for ('' or
    None without a login) and touches only that user's pictures.
    """

    def __init__(self, root: str | Path, index_path: str | Path | None = None) -> None:
        self.folder = OutputsFolder(root)
        self.index = HistoryIndex(index_path or self.folder.root / INDEX_NAME)
        self.notice = ""  # what the page says about the index from the start ("" when sound)
        self._news: list[str] = []
        self._repairing = threading.Lock()
        if self.index.found:
            self._said_at_start(damaged_message(self.index.found, self.index.moved))
        if self.index.in_memory:
            self._said_at_start(memory_message(self.index.in_memory))

    @classmethod
    def open(cls, root: str | Path, index_path: str | Path | None = None) -> History:
        """The history of `root`, its index brought up to date with the folder first (made
        when missing; PNGs added or deleted by hand, or saved by a process killed before
        it indexed them, are taken in). A damaged index is moved aside and made anew from
        the PNGs; one that cannot be written (a full disk) is kept in memory until the next
        start; `notice` says either. Raises OSError or sqlite3.Error when the folder
        cannot be used at all."""
        history = cls(root, index_path)
        try:
            report = history.sync()
        except (OSError, sqlite3.Error) as error:
            if not unwritable(error):
                history.close()
                raise
            history.index.use_memory(error, ())
            history._said_at_start(memory_message(history.index.in_memory))
            report = history.sync()
        log.info("history in %s: %d image(s) indexed, %d dropped, %d without a recipe",
                 history.folder.root, report.added, report.removed, report.skipped)
        return history

    @property
    def root(self) -> Path:
        return self.folder.root

    def close(self) -> None:
        self.index.close()

    def require_file(self) -> None:
        """Raise HistoryError when the index is kept in memory (its file cannot be written),
        for what only a file can do (a rebuild from the command line)."""
        if self.index.in_memory:
            raise HistoryError(f"The index file cannot be written ({self.index.in_memory}).")

    def take_news(self) -> list[str]:
        """What has happened to the index since last asked (a damaged one made anew), one
        line each, for the page to say once."""
        with self._repairing:
            news, self._news = self._news, []
        return news

    def _said_at_start(self, message: str) -> None:
        log.warning("%s", message)
        self.notice = f"{self.notice} {message}".strip()

    # --- a damaged index is made anew, whenever it is found -------------------------------------

    def _indexed(self, call: Callable[[HistoryIndex], T]) -> T:
        """`call(self.index)`; when it finds the index damaged, the index is made anew from
        the PNGs and `call` runs again on the new one."""
        generation = self.index.generation
        try:
            return call(self.index)
        except sqlite3.DatabaseError as error:
            if not damaged(error):
                raise
            self._repair(error, generation)
        return call(self.index)

    def _repair(self, error: sqlite3.DatabaseError, generation: int) -> None:
        with self._repairing:
            if self.index.generation != generation:
                return  # another thread has done it meanwhile
            entries = self._entries(self.folder.scan())
            try:
                moved = self.index.renew(entries)
                message = damaged_message(str(error), moved)
            except (OSError, sqlite3.Error) as failure:
                if not unwritable(failure):
                    raise
                self.index.use_memory(failure, entries)
                message = memory_message(self.index.in_memory)
            log.warning("%s", message)
            self._news.append(message)

    # --- saving ------------------------------------------------------------------------------

    def save(self, pngs: Sequence[tuple[bytes, Recipe]], user: str | None,
             created: datetime) -> list[Entry]:
        """Write result PNGs (bytes from `folder.result_png`) into `user`'s folder, then
        index them; returns their entries.

        Every PNG is on disk before the index is touched, so a crash or a failing index
        loses no picture (the next `sync` takes it in). Raises HistoryError saying what
        was kept when a file cannot be written or the index cannot be updated.
        """
        stored, failure = [], None
        for data, recipe in pngs:
            try:
                stored.append(self.folder.stored(self.folder.write(data, recipe, user or "",
                                                                   created)))
            except OSError as error:
                failure = error
                break
        entries = self._entries(stored)
        try:
            entries = self._indexed(lambda index: index.add(entries))
        except sqlite3.Error as error:
            raise HistoryError(f"The pictures are saved in {self.root}, but the history index "
                               f"could not be updated ({error}); it is repaired at the next "
                               "start.") from error
        if failure is not None:
            raise HistoryError(f"Could not save to the outputs folder {self.root} "
                               f"({failure.strerror or failure}): {len(pngs) - len(stored)} "
                               "picture(s) are shown but not kept; download them.") from failure
        return entries

    # --- reading and deleting ----------------------------------------------------------------

    def page(self, user: str | None, query: Query | None = None, number: int = 1,
             size: int = 24) -> Page:
        """`user`'s pictures matching `query` (None: all), newest first (see
        `HistoryIndex.page`)."""
        return self._indexed(lambda index: index.page(user or "", query or Query(), number,
                                                      size))

    def get(self, user: str | None, image_id: int) -> Entry:
        """Picture `image_id` of `user`. Raises HistoryError when `user` has no such picture
        (the same message whether it does not exist or is someone else's), or when its file
        was deleted by hand (its row is dropped then)."""
        entry = self._indexed(lambda index: index.get(user or "", int(image_id)))
        if entry is None:
            raise HistoryError(f"There is no picture #{image_id} in your history.")
        if not self.path(entry).is_file():
            self.forget([entry.file])
            raise HistoryError(f"The file of picture #{image_id} is gone (deleted outside the "
                               "app); it is removed from your history.")
        return entry

    def path(self, entry: Entry) -> Path:
        return self.folder.path(entry.file)

    def forget(self, files: Sequence[str]) -> int:
        """Drop the rows of `files` (found gone), leaving any file alone."""
        return self._indexed(lambda index: index.remove(files))

    def delete(self, user: str | None, image_id: int) -> Entry:
        """Delete picture `image_id` of `user`: its file, then its row (a crash in between
        leaves a row the next sync drops, never a picture that comes back)."""
        entry = self.get(user, image_id)
        try:
            self.path(entry).unlink(missing_ok=True)
        except OSError as error:
            raise HistoryError(f"Could not delete {entry.file}: "
                               f"{error.strerror or error}.") from error
        self.forget([entry.file])
        return entry

    # --- keeping the index true to the folder -------------------------------------------------

    def sync(self) -> SyncReport:
        """Index the PNGs that are new or changed and drop the rows whose file is gone."""
        return self._indexed(self._sync)

    def _sync(self, index: HistoryIndex) -> SyncReport:
        known = index.signatures()  # before the scan: a row added meanwhile stays
        found = {stored.file: stored for stored in self.folder.scan()}
        changed = [stored for file, stored in found.items()
                   if known.get(file) != (stored.size, stored.mtime_ns)]
        entries = self._entries(changed)
        unreadable = {stored.file for stored in changed} - {entry.file for entry in entries}
        gone = [file for file in known
                if (file not in found and not self.folder.path(file).exists())
                or file in unreadable]
        removed = index.remove(gone)
        index.add(entries)
        self.folder.remove_leftovers(LEFTOVER_AGE_S)
        return SyncReport(len(entries), removed, len(unreadable))

    def rebuild(self) -> SyncReport:
        """Make the index anew from the folder's PNGs alone (in one transaction)."""
        return self._indexed(self._rebuild)

    def _rebuild(self, index: HistoryIndex) -> SyncReport:
        found = list(self.folder.scan())
        entries = self._entries(found)
        before = len(index.signatures())
        index.replace_all(entries)
        return SyncReport(len(entries), before, len(found) - len(entries))

    def _entries(self, stored: Iterable[StoredFile]) -> list[Entry]:
        """The index rows of the `stored` PNGs that carry a recipe."""
        return [entry for entry in (read_entry(self.folder, one) for one in stored)
                if entry is not None]


def damaged_message(found: str, moved: Path | None) -> str:
    """What the page and the log say of an index found damaged (`found`: SQLite's words)."""
    kept = f"kept as {moved.name}" if moved else "moved aside by another process"
    return (f"The history index was damaged ({found}): the damaged file is {kept}, and the "
            "index is made anew from the pictures in the folder.")


def memory_message(why: str) -> str:
    """What the page and the log say when the index file cannot be written (`why`)."""
    return (f"The history index cannot be written ({why}): the pictures in the folder are "
            "listed from memory until the next start, which brings the index file up to "
            "date.")
