"""Many writers saving different pictures under one name at the same moment, in threads or
processes, and the check that every picture was kept whole under a name of its own.

Each writer saves its own random picture; whatever the names, the folder must then hold
exactly one file per picture, byte for byte the picture (and its recipe) it was given.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glide_ui.recipe import Recipe

RECIPE = Recipe(pipeline="text2im", prompt="a corgi at the same moment", seed=7,
                settings={"guidance_scale": 3.0}, models={"base": "tiny-base"})
MOMENT = datetime(2025, 3, 14, 15, 9, 26).astimezone()  # one name for every History write
TRIALS, WRITERS = 40, 8  # trials of threads writing at once
PROCESS_SIZE = 256  # processes meet less exactly than threads: a longer write to overlap


def picture(writer: int, trial: int = 0, size: int = 64) -> Image.Image:
    """Writer `writer`'s picture (noise: distinct, and some work to encode)."""
    rng = np.random.default_rng(1000 * trial + writer)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def pixels(source: Path | bytes | Image.Image) -> bytes:
    """Every pixel (decoding all of a file: a part of one raises OSError)."""
    if isinstance(source, Image.Image):
        return np.asarray(source.convert("RGB")).tobytes()
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return np.asarray(image.convert("RGB")).tobytes()


def losses(folder: Path, expected: list[Image.Image], pattern: str = "*.png") -> list[str]:
    """What went wrong in `folder`: pictures missing or kept twice, extra files (empty list:
    every picture kept once, whole)."""
    files = sorted(folder.rglob(pattern))
    wanted = {pixels(image): index for index, image in enumerate(expected)}
    found: dict[int, list[str]] = {}
    problems = []
    for path in files:
        try:
            index = wanted.get(pixels(path))
        except OSError as error:  # half written, or not a picture
            problems.append(f"{path.name} unreadable ({error})")
            continue
        if index is None:
            problems.append(f"{path.name} holds none of the pictures")
        else:
            found.setdefault(index, []).append(path.name)
    problems += [f"picture {index} lost" for index in range(len(expected)) if index not in found]
    problems += [f"picture {index} kept {len(names)} times" for index, names in found.items()
                 if len(names) > 1]
    return problems


def at_once(count: int, write: Callable[[int, threading.Barrier], object]) -> list[object]:
    """Run write(writer, barrier) in `count` threads; each calls barrier.wait() right
    before it writes. Their results (an exception is re-raised)."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def run(writer: int) -> None:
        try:
            results[writer] = write(writer, barrier)
        except BaseException as error:  # noqa: BLE001 - re-raised below
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def trial_folder(kind: str, root: str | Path, trial: int) -> Path:
    """Where the process writers of `kind` save trial `trial`'s pictures: a folder each for
    GlideOutput.save; for History, a user each in one outputs folder (one index)."""
    if kind == "history":
        return Path(root) / "outputs" / "users" / f"trial-{trial}" / f"{MOMENT:%Y-%m-%d}"
    return Path(root) / f"trial-{trial}"


PROCESS_KINDS = ("save", "history")


def process_writer(root: str, writer: int, trials: int, barrier) -> None:
    """One of several processes: for each trial and each of `PROCESS_KINDS` (GlideOutput.save,
    History.save), wait for the others, then save this writer's picture into
    `trial_folder`."""
    from glide_ui.api import GlideOutput, with_recipe
    from glide_ui.history import History, result_png

    history = History(Path(root) / "outputs")
    for trial in range(trials):
        image = picture(writer, trial, PROCESS_SIZE)
        output = GlideOutput([with_recipe(image, RECIPE)], [RECIPE])
        barrier.wait()
        output.save(trial_folder("save", root, trial))
        data = result_png(image, RECIPE, MOMENT)
        barrier.wait()
        history.save([(data, RECIPE)], f"trial-{trial}", MOMENT)
    history.close()


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder in which this process cannot create a file. Root ignores permission bits,
    so as root it is sysfs's /sys/kernel (Linux; no one may create files there), else a
    folder without write permission."""
    folder = Path("/sys/kernel")
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    with pytest.raises(PermissionError):  # the premise of the tests that use it
        tempfile.NamedTemporaryFile(dir=folder)
    return folder


def file_in_the_way(tmp_path: Path) -> Path:
    """A regular file, to name a folder under it (`<file>/sub`)."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path
