"""Small training sets for the fine-tuning tests: solid-colour squares with captions."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def caption(name: str) -> str:
    return f"a {name} square"


def colour_folder(folder: Path, size: int = 64) -> Path:
    """One solid square per colour, each with its caption beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rgb in COLOURS.items():
        Image.new("RGB", (size, size), rgb).save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_text(caption(name))
    return folder


def colour_shard(path: Path, size: int = 64) -> Path:
    """The same squares as one WebDataset tar shard (key.png + key.txt)."""
    with tarfile.open(path, "w") as tar:
        for name, rgb in COLOURS.items():
            picture = io.BytesIO()
            Image.new("RGB", (size, size), rgb).save(picture, format="PNG")
            for suffix, data in (("png", picture.getvalue()), ("txt", caption(name).encode())):
                info = tarfile.TarInfo(f"{name}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path
