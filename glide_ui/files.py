"""Writing files: an output folder checked before the work, and every file written whole
under a name no other writer takes (threads and processes alike).

Every writer of pictures goes through here: `GlideOutput.save` and the CLI, the outputs
folder of History, the page's copies (results, filmstrips, history thumbnails), `save_png`.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from glide_ui.errors import GlideUIError


class FolderError(GlideUIError, OSError):
    """A folder that cannot be made or written into (also an OSError); the message says
    which folder and why."""


def cannot_write(folder: str | Path, error: OSError, name: str = "") -> FolderError:
    """The FolderError for `error`, met writing into `folder` (given as `name`, e.g.
    "--out"): a file in the folder's way is named, else the system's reason is given."""
    path = Path(folder).expanduser()
    where = f"{name} {path}" if name else str(path)
    blocker = next((part for part in (path, *path.parents) if part.exists()), None)
    if blocker is not None and not blocker.is_dir():
        reason = f"{blocker} is a file, not a folder"
    else:
        reason = error.strerror or str(error)
    return FolderError(f"Cannot save into {where}: {reason}.")


def writable_folder(folder: str | Path, name: str = "") -> Path:
    """`folder`, made (with its parents) when missing and proven writable by creating and
    removing a file in it: call it before the work that fills it. `name` says where the
    folder was given ("--out"), for the message. Raises FolderError."""
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".glide-ui-check-"):
            pass
    except OSError as error:
        raise cannot_write(path, error, name) from None
    return path


def write_new(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Write `data` into `folder` (which exists) under the first free name of stem+suffix,
    stem-2+suffix, stem-3+suffix...; returns its path.

    The name is claimed atomically: no file is ever replaced and two writers, in any
    threads or processes, never take the same name. The bytes go to a hidden temporary
    file (".glide-ui-*.tmp"), are flushed to disk, then linked under the name, so a crash
    or a full disk leaves the whole file or none. Raises OSError.
    """
    temporary = folder / f".glide-ui-{uuid.uuid4().hex}.tmp"
    try:
        _write_synced(temporary, data)
        for number in range(1, 10_000):
            target = folder / (f"{stem}{suffix}" if number == 1 else f"{stem}-{number}{suffix}")
            try:
                _claim(temporary, target)
                return target
            except FileExistsError:
                continue
        raise FileExistsError(f"no free name for {stem}{suffix} in {folder}")
    finally:
        temporary.unlink(missing_ok=True)


def write_replacing(path: str | Path, data: bytes) -> Path:
    """Write `data` at `path`, replacing what is there in one step: a reader sees the old
    file or the whole new one, never a part. Raises OSError."""
    path = Path(path)
    temporary = path.with_name(f".glide-ui-{uuid.uuid4().hex}.tmp")
    try:
        _write_synced(temporary, data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _claim(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # fails if `target` exists
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links: claim the name, then rename the whole file
        # over it (a crash in between leaves an empty file, never a part of one).
        with open(target, "xb"):
            pass
        os.replace(source, target)
