"""Result images as PNG files with their recipe, and how the page shows them."""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gradio.utils import get_upload_folder
from PIL import Image

from glide_ui.files import write_new
from glide_ui.history import History, HistoryError, result_png
from glide_ui.images import make_grid, png_bytes
from glide_ui.pipelines.events import Filmstrips, Result

log = logging.getLogger("glide_ui.ui")


@dataclass(frozen=True)
class Saved:
    """The files the page shows for a result, and why its pictures are not (all) kept in
    the outputs folder, or what befell the history meanwhile (a damaged index made anew;
    "" when nothing, or when saving is off)."""

    paths: list[Path]
    problem: str = ""


class ResultStore:
    """Keeps each request's pictures in the outputs folder (`history`, None when saving is
    off) and writes the copies the page shows into a fresh folder under Gradio's temp dir.

    Gradio copies returned files into its own cache, so only the last `keep` temp folders
    are kept here (the page serves its copies); older ones are deleted.
    """

    def __init__(self, root: str | Path | None = None, keep: int = 64,
                 history: History | None = None) -> None:
        self.root = Path(root or get_upload_folder()) / "glide-ui-results"
        self.history = history
        self._folders: deque[Path] = deque()
        self._keep = keep
        self._lock = threading.Lock()

    def save(self, result: Result, user: str | None = None) -> Saved:
        """Save `result`'s pictures for `user` (None: no login): the outputs folder first
        (a failure there, and news of the history's index, is reported in
        `Saved.problem`, not raised), then the page's copies, the same bytes."""
        created = datetime.now().astimezone()
        pngs = [(result_png(image, recipe, created), recipe)
                for image, recipe in zip(result.images, result.recipes, strict=True)]
        problems = []
        if self.history is not None:
            try:
                self.history.save(pngs, user, created)
            except HistoryError as error:
                problems.append(str(error))
                log.warning("saving a result: %s", error)
            problems += self.history.take_news()
        folder = self._new_folder()
        paths = [write_new(folder, f"{recipe.file_stem()}-{index}", ".png", data)
                 for index, (data, recipe) in enumerate(pngs)]
        return Saved(paths, " ".join(problems))

    def save_filmstrips(self, film: Filmstrips) -> list[tuple[str, str]]:
        """The page's copies of `film` (animated WebP, contact-sheet PNG) as gallery items
        captioned with each image's seed."""
        folder = self._new_folder()
        items = []
        for index, (data, sheet, seed) in enumerate(zip(film.animations, film.sheets,
                                                         film.seeds, strict=True)):
            animation = write_new(folder, f"glide-filmstrip-{seed}-{index}", ".webp", data)
            contact = write_new(folder, f"glide-contact-sheet-{seed}-{index}", ".png",
                                png_bytes(sheet))
            items += [(str(animation), f"seed {seed} · filmstrip"),
                      (str(contact), f"seed {seed} · contact sheet")]
        return items

    def _new_folder(self) -> Path:
        folder = self.root / uuid.uuid4().hex
        folder.mkdir(parents=True)
        with self._lock:
            self._folders.append(folder)
            while len(self._folders) > self._keep:
                shutil.rmtree(self._folders.popleft(), ignore_errors=True)
        return folder


def caption(result: Result, index: int) -> str:
    """The gallery caption of image `index`: its seed, and the pipeline's label if any."""
    seed = f"seed {result.recipes[index].seed}"
    label = result.labels[index] if index < len(result.labels) else ""
    return f"{label} · {seed}" if label else seed


def gallery_items(paths: list[Path], result: Result) -> list[tuple[str, str]]:
    return [(str(path), caption(result, index)) for index, path in enumerate(paths)]


PREVIEW_SIZE = 256  # small previews are enlarged to this (pixel for pixel) to be seen


def preview_image(images: list[Image.Image]) -> Image.Image:
    """One picture of a batch's previews, enlarged, side by side when there are several."""
    images = [_enlarged(image) for image in images]
    if len(images) == 1:
        return images[0]
    return make_grid(images, cols=min(len(images), 4), gap=2)


def _enlarged(image: Image.Image) -> Image.Image:
    factor = PREVIEW_SIZE // max(image.size)
    if factor < 2:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
