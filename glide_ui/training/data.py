"""Training data: pictures with captions from a folder, a CSV / JSONL list or WebDataset
tar shards, checked before any training with a report of what was found and skipped.

Layouts (paths in a list are relative to the list's folder):
- a folder of pictures, each with a same-named `.txt` caption (`cat.png` + `cat.txt`);
- a `.csv` with `path,caption` columns (a header row naming them), or a `.jsonl` of
  `{"path": ..., "caption": ...}` lines;
- a `.tar` WebDataset shard, or a folder of them: members grouped by key (`0001.jpg` +
  `0001.txt`), WebDataset's own naming rule.

Every picture is decoded once while scanning (EXIF-upright, RGB), so a bad one is reported
then and never stops a run. Items are read again by random access (a shard member by its
offset), so the order a seed chooses is the same on every run and after a resume.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from glide_ui.errors import GlideUIError, RequestError
from glide_ui.images import load_image, pil_to_tensor
from glide_ui.training.config import FITS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class DataError(GlideUIError):
    """Training data that cannot be used: nothing there, no usable picture, a bad list."""


@dataclass(frozen=True)
class Item:
    """One usable picture: where its bytes are, its caption."""

    source: str  # what the report names: a path, or "shard.tar:key"
    path: Path
    caption: str
    offset: int = -1  # a shard member's data offset (-1: the whole file)
    length: int = 0

    def read(self) -> bytes:
        if self.offset < 0:
            return self.path.read_bytes()
        with open(self.path, "rb") as stream:
            stream.seek(self.offset)
            return stream.read(self.length)


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


@dataclass(frozen=True)
class DataReport:
    """What a scan found: the usable items and, for each skipped one, why."""

    root: Path
    items: list[Item]
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def found(self) -> int:
        return len(self.items) + len(self.skipped)

    def summary(self, limit: int = 20) -> str:
        """Lines for a person: the counts, then each skipped item and its reason."""
        lines = [f"{self.root}: {self.found} pictures found, {len(self.items)} usable, "
                 f"{len(self.skipped)} skipped."]
        lines += [f"  skipped {s.source}: {s.reason}" for s in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more skipped")
        return "\n".join(lines)


def scan(source: str | Path, size: int) -> DataReport:
    """Find the pictures and captions at `source` and check each decodes and has a short
    side of at least `size` px. Raises DataError when nothing usable is found."""
    root = Path(source)
    if not root.exists():
        raise DataError(f"No training data at {root}: no such file or folder.")
    candidates = list(_candidates(root))
    items, skipped = [], []
    for name, path, caption, offset, length in candidates:
        item = Item(name, path, (caption or "").strip(), offset, length)
        reason = _problem(item, caption is not None, size)
        if reason:
            skipped.append(Skipped(name, reason))
        else:
            items.append(item)
    report = DataReport(root, items, skipped)
    if not items:
        detail = f" ({report.summary(5).splitlines()[0]})" if skipped else ""
        raise DataError(f"No usable training pictures in {root}{detail}: "
                        + (f"{skipped[0].source}: {skipped[0].reason}" if skipped else
                           f"expected pictures ({', '.join(IMAGE_SUFFIXES)}) with .txt "
                           "captions, a .csv/.jsonl list or .tar shards."))
    return report


_Candidate = tuple[str, Path, "str | None", int, int]


def _candidates(root: Path) -> Iterator[_Candidate]:
    if root.is_dir():
        shards = sorted(root.glob("*.tar"))
        if shards:
            for shard in shards:
                yield from _shard(shard)
            return
        yield from _folder(root)
    elif root.suffix.lower() == ".tar":
        yield from _shard(root)
    elif root.suffix.lower() == ".csv":
        yield from _listed(root, _csv_rows(root))
    elif root.suffix.lower() == ".jsonl":
        yield from _listed(root, _jsonl_rows(root))
    else:
        raise DataError(f"{root} is not a folder, .csv, .jsonl or .tar shard.")


def _folder(root: Path) -> Iterator[_Candidate]:
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        text = path.with_suffix(".txt")
        caption = _read_text(text) if text.is_file() else None
        yield str(path.relative_to(root)), path, caption, -1, 0


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _csv_rows(path: Path) -> Iterator[tuple[str, str | None]]:
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if not reader.fieldnames or not {"path", "caption"} <= set(reader.fieldnames):
            raise DataError(f"{path}: the first row must name the columns path and caption.")
        for row in reader:
            yield row.get("path") or "", row.get("caption")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, str | None]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            yield str(row["path"]), row.get("caption")
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}, line {number}: expected {{\"path\": ..., "
                            "\"caption\": ...}.") from None


def _listed(listing: Path, rows: Iterator[tuple[str, str | None]]) -> Iterator[_Candidate]:
    for name, caption in rows:
        yield name, listing.parent / name, caption, -1, 0


def _shard(shard: Path) -> Iterator[_Candidate]:
    from webdataset.tariterators import base_plus_ext

    try:
        with tarfile.open(shard) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            groups: dict[str, dict[str, tarfile.TarInfo]] = {}
            for member in members:
                key, ext = base_plus_ext(member.name)
                if key is not None:
                    groups.setdefault(key, {})[ext.lower()] = member
            for key, parts in groups.items():
                yield _shard_item(shard, tar, key, parts)
    except tarfile.TarError as error:
        raise DataError(f"{shard} is not a readable tar shard: {error}") from None


def _shard_item(shard: Path, tar: tarfile.TarFile, key: str,
                parts: dict[str, tarfile.TarInfo]) -> _Candidate:
    name = f"{shard.name}:{key}"
    image = next((parts[ext] for ext in parts if f".{ext}" in IMAGE_SUFFIXES), None)
    caption = None
    if "txt" in parts:
        data = tar.extractfile(parts["txt"])
        caption = data.read().decode("utf-8", "replace") if data else None
    if image is None:
        return name, shard, caption, 0, 0  # reported as "no picture"
    return name, shard, caption, image.offset_data, image.size


def _problem(item: Item, captioned: bool, size: int) -> str:
    """Why an item cannot be used ("" when it can)."""
    if not captioned:
        return "no caption (a .txt beside it, or a caption in the list)"
    if not item.caption:
        return "empty caption"
    try:
        data = item.read() if item.offset != 0 or item.length else b""
        if not data:
            return "no picture"
        image = load_image(data)
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    except RequestError as error:
        return f"unreadable ({error})"
    if min(image.size) < size:
        return (f"too small ({image.size[0]} x {image.size[1]} px; the short side needs at "
                f"least {size} px)")
    return ""


def prepare(item: Item, size: int, fit: str = "crop", flip: bool = False) -> torch.Tensor:
    """The item's picture as float32 [3, size, size] in [-1, 1]: "crop" takes the centre
    square then resizes, "resize" squeezes the whole picture; `flip` mirrors it."""
    if fit not in FITS:
        raise RequestError(f"fit must be one of {FITS}, got {fit!r}")
    image = load_image(io.BytesIO(item.read()))
    if fit == "crop":
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    image = image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return pil_to_tensor(image)[0]
