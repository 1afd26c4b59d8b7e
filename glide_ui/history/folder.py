"""The outputs folder: where result PNGs go, under which names, written so none is ever half there.

Layout (the index can be rebuilt from it alone, see `history.index`):

    DIR/2025-01-31/142233-generate-an-oil-painting-of-a-corgi-42.png      no login (--auth off)
    DIR/users/ann/2025-01-31/142301-inpaint-a-hat-7.png                 user "ann" (--auth)
    DIR/history.sqlite3                                                 the index

One sub-folder per (local) day; a file name says the time, the tab, the prompt and the seed.
The owner of an image is the folder it is in. Each PNG carries its recipe and its creation
time in text chunks, so the folder alone says everything the index holds.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote

from PIL import Image

from glide_ui.images import png_bytes
from glide_ui.recipe import Recipe
from glide_ui.settings import TABS  # the tab of each job (re-exported for the page)

OUTPUTS_ENV = "GLIDE_OUTPUTS"
"""Environment variable naming the outputs folder when `--outputs` is not given."""

CREATION_TIME_KEY = "Creation Time"  # a keyword the PNG specification predefines
USERS_DIR = "users"
DAY_FORMAT = "%Y-%m-%d"
_DAY_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"


def default_outputs_dir() -> Path:
    """`GLIDE_OUTPUTS`, else `outputs` in the per-user data folder of the platform
    (e.g. ~/.local/share/glide-ui/outputs on Linux, from platformdirs)."""
    if os.environ.get(OUTPUTS_ENV):
        return Path(os.environ[OUTPUTS_ENV]).expanduser()
    from platformdirs import user_data_path

    return user_data_path("glide-ui", appauthor=False) / "outputs"


def tab_of(pipeline: str) -> str:
    return TABS.get(pipeline, pipeline)


def slug(text: str, limit: int = 40) -> str:
    """`text` as a short file-name part: lower-case ASCII letters and digits joined by '-'."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "untitled"


def result_png(image: Image.Image, recipe: Recipe, created: datetime) -> bytes:
    """The PNG of a result: its recipe (see `images.png_bytes`) and its creation time
    (ISO 8601 with the UTC offset) in text chunks."""
    return png_bytes(image, recipe, text={CREATION_TIME_KEY: created.isoformat()})


def user_folder(user: str) -> str:
    """A user name as one safe folder name (percent-encoded; '.' too, so never '..')."""
    return quote(user, safe="").replace(".", "%2E")


@dataclass(frozen=True)
class StoredFile:
    """A PNG in the outputs folder: its path relative to the folder ('/'-separated), the
    user it belongs to ('' without a login) and its size and mtime (to notice changes)."""

    file: str
    user: str
    size: int
    mtime_ns: int


class OutputsFolder:
    """Writes and finds the result PNGs under `root` (created on first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def path(self, file: str) -> Path:
        return self.root / file

    def write(self, data: bytes, recipe: Recipe, user: str, created: datetime) -> Path:
        """Write one PNG (bytes from `result_png`) into the user's folder of the day.

        Atomic: the bytes go to a hidden temporary file, are flushed to disk, then linked
        under the final name, so a crash or a full disk leaves either the whole PNG or none
        (a leftover temporary file is not a PNG and is never indexed). An existing file is
        never replaced: a second image of the same name gets "-2", "-3"... Raises OSError.
        """
        folder = self.root / (f"{USERS_DIR}/{user_folder(user)}/" if user else "") / \
            created.strftime(DAY_FORMAT)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{created:%H%M%S}-{tab_of(recipe.pipeline)}-{slug(recipe.prompt)}-{recipe.seed}"
        temporary = folder / f".{stem}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temporary, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            return _link_unique(temporary, folder, stem)
        finally:
            temporary.unlink(missing_ok=True)

    def stored(self, path: Path) -> StoredFile:
        """What the folder knows of the PNG at `path` (inside it). Raises OSError."""
        stat = path.stat()
        file = path.relative_to(self.root).as_posix()
        return StoredFile(file, owner(file), stat.st_size, stat.st_mtime_ns)

    def scan(self) -> Iterator[StoredFile]:
        """Every result PNG in the folder's layout (day folders, per-user day folders)."""
        for path in self._glob("*.png"):
            try:
                yield self.stored(path)
            except OSError:  # deleted while scanning
                continue

    def remove_leftovers(self, older_than_s: float) -> int:
        """Delete temporary files of writes that never finished (a killed process) once
        they are `older_than_s` seconds old (a younger one may still be written)."""
        removed = 0
        for path in self._glob(".*.tmp"):
            try:
                if time.time() - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def _glob(self, name: str) -> Iterator[Path]:
        for pattern in (f"{_DAY_GLOB}/{name}", f"{USERS_DIR}/*/{_DAY_GLOB}/{name}"):
            yield from self.root.glob(pattern)


def owner(file: str) -> str:
    """The user a PNG belongs to, from its place in the folder ('' = no login)."""
    parts = file.split("/")
    return unquote(parts[1]) if len(parts) == 4 and parts[0] == USERS_DIR else ""


def _link_unique(source: Path, folder: Path, stem: str) -> Path:
    """Give `source` the first free name stem.png, stem-2.png, ... in `folder`: two
    writers never take the same name, and no file is ever replaced."""
    for number in range(1, 10_000):
        target = folder / (f"{stem}.png" if number == 1 else f"{stem}-{number}.png")
        try:
            _claim(source, target)
            return target
        except FileExistsError:
            continue
    raise FileExistsError(f"no free name for {stem}.png in {folder}")


def _claim(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # fails if `target` exists
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links: claim the name, then rename the whole file
        # over it (a crash in between leaves an empty file, which is never indexed).
        with open(target, "xb"):
            pass
        os.replace(source, target)
