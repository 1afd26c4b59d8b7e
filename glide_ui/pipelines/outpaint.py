"""Outpainting: extend a picture on any side, the new area made by the inpainting models.

The picture sits on a larger canvas; the new area, and a band of `blend` pixels of the
picture next to it, are made window by window (`plan_windows`). A window is a square of
at most 256 canvas pixels (the upsampler's size, so no window shrinks the picture) that
the inpainting models see as a patch (`inpaint.patch_at`): what is already there (the
picture, or earlier windows) is the known region, everything else in it is made. Windows
overlap and run in order from the picture outwards, so each sees the context made
before it. Finally the canvas is blended into the picture (`blend_alpha`): pixels of the
picture farther than `blend` from the new area keep their exact values.

Each image of a batch draws all its windows' noise from its own generators (seeded with
its seed, and seed + 2**31 for the upsampler), so it comes out the same when run alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from glide_ui.images import Box, paste_back, tensor_to_pil
from glide_ui.pipelines.common import (
    UPSAMPLE_SEED_OFFSET,
    batches_images,
    begin,
    image_generators,
    loading_notices,
    make_recipes,
    prompt_notices,
)
from glide_ui.pipelines.events import Event, Result
from glide_ui.pipelines.filmstrip import filmstrips
from glide_ui.pipelines.inpaint import (
    UPSAMPLE_SIZE,
    base_stage,
    image_record,
    patch_at,
    upsample_stage,
)
from glide_ui.pipelines.requests import OutpaintRequest
from glide_ui.pipelines.windows import inside, labelled, place, tiles

WINDOW = UPSAMPLE_SIZE
"""Largest window side, in canvas pixels: the upsampler's output size."""
CONTEXT = WINDOW // 4
"""Known pixels a window keeps across its width when it reaches outwards (64 of 256)."""
FILL = (127, 127, 127)  # the canvas's colour where nothing is made yet (the models never see it)


@dataclass(frozen=True)
class Layout:
    """Where the picture sits on the canvas and which windows make the rest."""

    canvas: tuple[int, int]  # (width, height)
    picture: Box  # the picture's box on the canvas
    kept: Box  # the part of it outside the blend band (known from the start)
    windows: list[Box]


def layout(size: tuple[int, int], left: int, top: int, right: int, bottom: int,
           blend: int) -> Layout:
    """The canvas of a picture of `size` extended by the given pixels per side, and its
    windows (see `plan_windows`)."""
    width, height = size
    canvas = (left + width + right, top + height + bottom)
    picture = (left, top, left + width, top + height)
    kept = (left + (blend if left else 0), top + (blend if top else 0),
            left + width - (blend if right else 0), top + height - (blend if bottom else 0))
    return Layout(canvas, picture, kept, plan_windows(canvas, kept))


def plan_windows(canvas: tuple[int, int], kept: Box, side: int = WINDOW,
                 context: int = CONTEXT) -> list[Box]:
    """The windows (left, top, right, bottom) that make every canvas pixel outside `kept`,
    in the order to run them. Pure: no pixels involved.

    The made region grows from `kept` in rings: each ring reaches at most `side - context`
    pixels further out on each side, so a window reaching out keeps at least `context`
    known pixels across (a quarter of the window on a canvas smaller than `side`). A
    ring's windows run first down the left and right edges (the rows already made), then
    along the top and bottom (corners included, which then see both); neighbours along an
    edge overlap by `context` pixels. Windows are squares of min(`side`, the canvas's
    longer side) pixels: never larger than the model window, so no window shrinks the
    picture; on a canvas narrower than that they overhang it. Windows whose pixels are
    all made before them are left out.
    """
    width, height = canvas
    side = min(side, max(width, height))
    reach = side - min(context, side // 4)
    made = kept
    windows: list[Box] = []
    while made != (0, 0, width, height):
        x0, y0, x1, y1 = made
        ring = (max(x0 - reach, 0), max(y0 - reach, 0), min(x1 + reach, width),
                min(y1 + reach, height))
        for near, far, start, stop in ((x0, ring[0], y0, y1), (x1, ring[2], y0, y1)):
            if far != near:
                x = place(min(near, far), max(near, far), side, width, toward=far)
                windows += [(x, y, x + side, y + side) for y in tiles(start, stop, side,
                                                                      context, height)]
        for near, far in ((y0, ring[1]), (y1, ring[3])):
            if far != near:
                y = place(min(near, far), max(near, far), side, height, toward=far)
                windows += [(x, y, x + side, y + side) for x in tiles(ring[0], ring[2], side,
                                                                      context, width)]
        made = ring
    return _useful(windows, canvas, kept)


def _useful(windows: list[Box], canvas: tuple[int, int], kept: Box) -> list[Box]:
    """`windows` without those whose pixels are all made before them (on a small canvas,
    one window may hold several rings' edges)."""
    made = np.zeros(canvas[::-1], dtype=bool)
    inside(made, kept)[:] = True
    useful = []
    for box in windows:
        if not inside(made, box).all():
            useful.append(box)
            inside(made, box)[:] = True
    return useful


def blend_alpha(layout: Layout) -> np.ndarray:
    """Weight of the made canvas in the result (float32 [H, W] of the canvas): 1 in the
    new area, falling linearly across the blend band to 0 at `blend` pixels inside the
    picture (from the nearest extended edge), 0 beyond: those pixels are the picture's."""
    width, height = layout.canvas
    alpha = np.ones((height, width), dtype=np.float32)
    px0, py0, px1, py1 = layout.picture
    kx0, ky0, kx1, ky1 = layout.kept
    # Distance (in pixels) to the nearest new pixel, across each extended side.
    dx = _distance_in(px0, px1, kx0 > px0, kx1 < px1)
    dy = _distance_in(py0, py1, ky0 > py0, ky1 < py1)
    band = max(kx0 - px0, ky0 - py0, px1 - kx1, py1 - ky1)
    distance = np.minimum(dx[None, :], dy[:, None])
    alpha[py0:py1, px0:px1] = np.clip(1.0 - distance / band, 0.0, 1.0) if band else 0.0
    return alpha


def _distance_in(start: int, stop: int, before: bool, after: bool) -> np.ndarray:
    """For the pixels start..stop-1 of a row: the distance to the new pixel just before
    `start` (when `before` is new) or at `stop` (when `after` is), inf when neither."""
    at = np.arange(start, stop, dtype=np.float32)
    distance = np.full(stop - start, np.inf, dtype=np.float32)
    if before:
        distance = np.minimum(distance, at - start + 1)
    if after:
        distance = np.minimum(distance, stop - at)
    return distance


@filmstrips
def outpaint(request: OutpaintRequest, manager: Any) -> Iterator[Event]:
    """Extend `request.image`; see the module docstring. Yields the windows' progress
    and previews under "window k/n", then a Result with the extended pictures."""
    request, seeds = yield from begin(request)
    names = ("base-inpaint", "upsample-inpaint") if request.upsample else ("base-inpaint",)
    yield from prompt_notices(request.prompt, manager, names)
    plan = layout(request.image.size, request.left, request.top, request.right,
                  request.bottom, request.blend)
    alpha = blend_alpha(plan)
    picture = Image.new("RGB", plan.canvas, FILL)
    picture.paste(request.image, plan.picture[:2])
    canvases = [np.array(picture) for _ in seeds]
    made = alpha == 0  # the same for every image: it depends on the windows alone
    generators = image_generators(seeds), image_generators(seeds, UPSAMPLE_SEED_OFFSET)
    yield from loading_notices(manager, names)
    together = batches_images(request, manager)
    with manager.use(*names) as models:
        for index, box in enumerate(plan.windows):
            label = f"window {index + 1}/{len(plan.windows)}"
            patches = [patch_at(Image.fromarray(canvas), ~made, box) for canvas in canvases]
            x = yield from labelled(label, base_stage(models[0], request, seeds, patches,
                                                       generators[0], batched=together))
            if request.upsample:
                x = yield from labelled(label, upsample_stage(models[1], request, seeds,
                                                               patches, x, generators[1],
                                                               batched=together))
            for canvas, window in zip(canvases, tensor_to_pil(x), strict=True):
                fill(canvas, made, window, box)
            inside(made, box)[:] = True
    whole = (0, 0, *plan.canvas)
    images = [paste_back(picture, Image.fromarray(canvas), whole, alpha)
              for canvas in canvases]
    recipes = make_recipes("outpaint", request, seeds, manager, names,
                           **image_record(request.image))
    yield Result(images, recipes)


def fill(canvas: np.ndarray, made: np.ndarray, window: Image.Image, box: Box) -> None:
    """Write `window` (the models' picture of `box`, any size) into the canvas [H, W, 3]
    where `made` [H, W] is False. In place."""
    region = np.asarray(window.resize((box[2] - box[0], box[3] - box[1]),
                                      Image.Resampling.BICUBIC))
    x0, y0 = max(box[0], 0), max(box[1], 0)
    new = ~inside(made, box)
    target = inside(canvas, box)
    target[new] = region[y0 - box[1]:y0 - box[1] + new.shape[0],
                         x0 - box[0]:x0 - box[0] + new.shape[1]][new]
