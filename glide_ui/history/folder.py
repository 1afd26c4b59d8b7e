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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote

from PIL import Image

from glide_ui.files import writable_folder, write_new
from glide_ui.recipe import Recipe, slug
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


def outputs_dir(outputs: str | Path | None = None) -> Path:
    """The outputs folder: `outputs` (--outputs) if given, else `default_outputs_dir()`."""
    return Path(outputs).expanduser() if outputs else default_outputs_dir()


def writable_outputs(outputs: str | Path | None = None) -> Path:
    """`outputs_dir(outputs)`, made if missing and checked writable before any work (see
    `files.writable_folder`). Raises FolderError naming where the folder was given."""
    given = "--outputs" if outputs else f"${OUTPUTS_ENV}" if os.environ.get(OUTPUTS_ENV) else ""
    return writable_folder(outputs_dir(outputs), given)


def tab_of(pipeline: str) -> str:
    return TABS.get(pipeline, pipeline)


def result_png(image: Image.Image, recipe: Recipe, created: datetime) -> bytes:
    """The PNG of a result: its recipe (see `images.png_bytes`) and its creation time
    (ISO 8601 with the UTC offset) in text chunks."""
    from glide_ui.images import png_bytes  # torch: not needed to check a folder at start

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

        Atomic (see `files.write_new`): the whole PNG or none, even after a crash (a
        leftover temporary file is not a PNG and is never indexed). An existing file is
        never replaced: a second image of the same name gets "-2", "-3"... Raises OSError.
        """
        folder = self.root / (f"{USERS_DIR}/{user_folder(user)}/" if user else "") / \
            created.strftime(DAY_FORMAT)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{created:%H%M%S}-{tab_of(recipe.pipeline)}-{slug(recipe.prompt)}-{recipe.seed}"
        return write_new(folder, stem, ".png", data)

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
