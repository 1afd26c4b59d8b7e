"""What the history index holds: one entry per result PNG, read from the PNG alone, and
the queries and pages of entries it answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

from glide_ui.errors import GlideUIError, RequestError
from glide_ui.history.folder import CREATION_TIME_KEY, OutputsFolder, StoredFile, tab_of


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


COLUMNS = [f.name for f in fields(Entry) if f.name != "id"]
JSON_COLUMNS = ("settings", "models")


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
