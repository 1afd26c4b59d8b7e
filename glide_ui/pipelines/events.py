"""What a pipeline yields: a stream of small events that any front end can render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from glide_ui.recipe import Recipe


@dataclass(frozen=True)
class Status:
    """A line of text for the user, e.g. "loading base" or a truncated-prompt warning."""

    text: str
    level: Literal["info", "warning"] = "info"


@dataclass(frozen=True)
class Progress:
    """Step `step` (1-based) of `total` in `stage` ("base", "upsample", "clip", ...)."""

    stage: str
    step: int
    total: int


@dataclass(frozen=True)
class Preview:
    """Intermediate images of a stage: the predicted x0 (and x_t when asked for)."""

    stage: str
    step: int
    total: int
    images: list[Image.Image]
    noisy: list[Image.Image] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    """Final images, each with the recipe that reproduces it (`images[i]` <-> `recipes[i]`).

    `labels` (optional, one per image) say what distinguishes the images, e.g. the scale of
    a sweep or a CLIP score; `grid` is a labelled overview of all of them (sweeps and
    comparisons), not one of `images`.
    """

    images: list[Image.Image]
    recipes: list[Recipe]
    labels: list[str] = field(default_factory=list)
    grid: Image.Image | None = None


@dataclass(frozen=True)
class Frame:
    """A filmstrip frame: the predicted x0 of every image at one kept step of a stage."""

    stage: str
    step: int
    total: int
    images: list[Image.Image]


@dataclass(frozen=True)
class Filmstrips:
    """How each image of the last Result formed: an animated WebP (bytes) and a contact
    sheet of the kept frames, in the pipeline's order (`seeds[i]` is image i's seed; a
    ranking that reorders the Result does not reorder these)."""

    animations: list[bytes]
    sheets: list[Image.Image]
    seeds: list[int]


Event = Status | Progress | Preview | Result | Frame | Filmstrips
