"""What an error from the index file means: the file is damaged (move it aside and make it
anew from the PNGs), or it cannot be written here (keep the index in memory for now).

SQLite's result codes say it where Python gives them (`sqlite_errorcode`, 3.11 and later);
its messages otherwise.
"""

from __future__ import annotations

import errno
import sqlite3

SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 8, 10, 11, 13, 26
SQLITE_IOERR_READ, SQLITE_IOERR_SHORT_READ = 266, 522  # a bad sector, a cut-off file

_DAMAGED_CODES = {SQLITE_CORRUPT, SQLITE_NOTADB}
_DAMAGED_WORDS = ("malformed", "not a database", "vtable constructor failed", "corrupt",
                  "short read")
_UNWRITABLE_CODES = {SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR}
_UNWRITABLE_WORDS = ("disk is full", "readonly database", "disk i/o error")
_UNWRITABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class IndexDamaged(sqlite3.DatabaseError):
    """The index file failed a check (`PRAGMA quick_check`, the full-text integrity check)."""


def damaged(error: BaseException) -> bool:
    """Whether `error` says that the index file is damaged (any page: tables, indexes,
    full-text data, the header; or a part that cannot be read back)."""
    if isinstance(error, IndexDamaged):
        return True
    if not isinstance(error, sqlite3.DatabaseError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF in _DAMAGED_CODES
                             or code in (SQLITE_IOERR_READ, SQLITE_IOERR_SHORT_READ)):
        return True
    return any(word in str(error).lower() for word in _DAMAGED_WORDS)


def unwritable(error: BaseException) -> bool:
    """Whether `error` says that the index cannot be written where it is (a full disk or
    quota, a read-only file or file system, a failing disk)."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _UNWRITABLE_CODES and not damaged(error)
        return any(word in str(error).lower() for word in _UNWRITABLE_WORDS)
    return isinstance(error, OSError) and error.errno in _UNWRITABLE_ERRNOS
