"""Upscaling: a picture made 4 (or 2) times larger by GLIDE's 64 -> 256 inpainting upsampler
(`upsample-inpaint`) in overlapping windows, each seeing what its neighbours made.

The plan (`plan_upscale`): windows of 256 result pixels (the upsampler's output, pixel for
pixel) on the canvas of scale x the picture, tiled evenly in rows so that neighbours share
at least `overlap` result pixels and every pixel is in a window; they run row by row, left
to right, so each window's left and top neighbours are finished before it starts. A
window's low-res input is the part of the picture it enlarges: 64 source px at x4 as they
are; at x2, 128 source px resized to the model's 64. Its inpainting input is the canvas
under it: the pixels earlier windows finished, farther than `band` (half the overlap) from
what it makes, are given as known, exactly as they were made (pasted into every x0
prediction, as Inpaint does), and never changed. The rest of the window is made: new
pixels take the window's, and in the band (finished, but not given) the result falls
linearly from the window's pixels to the neighbour's (`window_weights`), so no window edge
shows.

Why x2 uses 128 px source windows rather than x4 then halving, or 64 px windows whose
256 px output is halved: the model's pixels are the result's pixels, so the overlap a
window is given is exactly what its neighbour made, not a resampled guess of it; and it
takes 9 windows for a 256 px picture instead of 25. The price: detail finer than 2 source
pixels is drawn anew by the model rather than kept.

Each image of a batch draws all its windows' noise from its own generator (seeded with
its seed + 2**31, as every upsampler stage), so it comes out the same when run alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from glide_ui.images import Box, pil_to_tensor, tensor_to_pil
from glide_ui.pipelines.common import (
    UPSAMPLE_SEED_OFFSET,
    StageEvents,
    begin,
    image_generators,
    loading_notices,
    make_recipes,
    prompt_notices,
)
from glide_ui.pipelines.events import Event, Preview, Result
from glide_ui.pipelines.filmstrip import filmstrips
from glide_ui.pipelines.inpaint import BASE_SIZE, UPSAMPLE_SIZE, Patch, image_record, upsample_stage
from glide_ui.pipelines.upscale_request import MODEL_WINDOW, UpscaleRequest, source_window
from glide_ui.pipelines.windows import inside, labelled, mapped, tiles

MODELS = ("upsample-inpaint",)
FILL = (127, 127, 127)  # the canvas where nothing is made yet (never given to the model)


@dataclass(frozen=True)
class UpscalePlan:
    """The windows that make an upscaled picture, in the order they run."""

    source: tuple[int, int]  # (width, height) of the picture, in source pixels
    scale: int
    canvas: tuple[int, int]  # (width, height) of the result
    windows: list[Box]  # (left, top, right, bottom) in result pixels, 256 px squares
    band: int  # result pixels of a finished overlap that are remade and blended

    def source_box(self, box: Box) -> Box:
        """The part of the picture (source pixels) window `box` enlarges."""
        return tuple(value // self.scale for value in box)  # type: ignore[return-value]


def plan_upscale(size: tuple[int, int], scale: int, overlap: int) -> UpscalePlan:
    """The windows for a picture of `size` (each side at least `source_window(scale)`) at
    `scale`, neighbours sharing at least `overlap` result pixels (rounded up to whole
    source pixels). Pure: no pixels involved. ValueError for a picture smaller than a
    window (the request enlarges those first)."""
    width, height = size
    side = source_window(scale)
    if min(size) < side:
        raise ValueError(f"a {width} x {height} picture is smaller than a {side} px window")
    shared = math.ceil(overlap / scale)  # in source pixels
    columns = tiles(0, width, side, shared, width)
    rows = tiles(0, height, side, shared, height)
    windows = [(x * scale, y * scale, (x + side) * scale, (y + side) * scale)
               for y in rows for x in columns]
    return UpscalePlan(size, scale, (width * scale, height * scale), windows,
                       shared * scale // 2)


def window_weights(finished: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray]:
    """For a window whose pixels `finished` (bool [H, W]) earlier windows made: which it is
    given as known (bool [H, W]: finished and more than `band` pixels, chessboard, from
    any pixel it makes) and the weight of its own pixels in the result (float32 [H, W]: 1
    where nothing was made, falling linearly across the band, 0 on the known pixels)."""
    distance = np.full(finished.shape, band + 1, dtype=np.float32)
    reached = ~finished
    distance[reached] = 0
    for step in range(1, band + 1):
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        wide = grown.copy()
        wide[:, 1:] |= grown[:, :-1]
        wide[:, :-1] |= grown[:, 1:]
        distance[wide & ~reached] = step
        reached = wide
    return distance > band, 1.0 - distance / (band + 1)


def blend_window(canvas: np.ndarray, window: np.ndarray, box: Box, weight: np.ndarray) -> None:
    """Write `window` (uint8 [256, 256, 3]) into `canvas` (uint8 [H, W, 3]) under `box`,
    weighted by `weight` (see `window_weights`): pixels of weight 0 keep their exact values.
    In place."""
    region = inside(canvas, box)
    alpha = weight[..., None]
    region[:] = np.rint(alpha * window + (1.0 - alpha) * region).astype(np.uint8)


@filmstrips
def upscale(request: UpscaleRequest, manager: Any) -> Iterator[Event]:
    """Upscale `request.image`; see the module docstring. Yields each window's progress
    under "window k/n · upsample", previews of the whole canvas filling in, then a Result
    with the upscaled pictures (scale x the picture's size)."""
    request, seeds = yield from begin(request)
    yield from prompt_notices(request.prompt, manager, MODELS)
    plan = plan_upscale(request.image.size, request.scale, request.overlap)
    canvases = [np.full((*plan.canvas[::-1], 3), FILL, dtype=np.uint8) for _ in seeds]
    made = np.zeros(plan.canvas[::-1], dtype=bool)  # the same for every image
    generators = image_generators(seeds, UPSAMPLE_SEED_OFFSET)
    yield from loading_notices(manager, MODELS)
    with manager.use(*MODELS) as (model,):
        for index, box in enumerate(plan.windows):
            known, weight = window_weights(inside(made, box), plan.band)
            patches = [window_patch(canvas, known, box) for canvas in canvases]
            low_res = low_res_of(request.image, plan, box).repeat(len(seeds), 1, 1, 1)
            stage = upsample_stage(model, request, seeds, patches, low_res, generators)
            x = yield from _on_canvas(labelled(f"window {index + 1}/{len(plan.windows)}",
                                               stage), canvases, box, weight)
            for canvas, window in zip(canvases, tensor_to_pil(x), strict=True):
                blend_window(canvas, np.asarray(window), box, weight)
            inside(made, box)[:] = True
    recipes = make_recipes("upscale", request, seeds, manager, MODELS,
                           **image_record(request.image))
    yield Result([Image.fromarray(canvas) for canvas in canvases], recipes)


def window_patch(canvas: np.ndarray, known: np.ndarray, box: Box) -> Patch:
    """The inpainting upsampler's view of `box` of `canvas`: its pixels and `known` (True =
    given, the model's 1) at 256 px."""
    image = pil_to_tensor(Image.fromarray(np.ascontiguousarray(inside(canvas, box))))
    mask = torch.from_numpy(known.astype(np.float32))[None, None]
    return Patch(box, {UPSAMPLE_SIZE: image}, {UPSAMPLE_SIZE: mask})


def low_res_of(image: Image.Image, plan: UpscalePlan, box: Box) -> torch.Tensor:
    """The part of `image` window `box` enlarges, at the model's 64 px: [1, 3, 64, 64]."""
    part = image.crop(plan.source_box(box))
    if part.size != (BASE_SIZE, BASE_SIZE):
        part = part.resize((BASE_SIZE, BASE_SIZE), Image.Resampling.BICUBIC)
    return pil_to_tensor(part)


def _on_canvas(stage: StageEvents, canvases: list[np.ndarray], box: Box,
               weight: np.ndarray) -> StageEvents:
    """`stage`'s events with each Preview showing the whole canvas: the window's predicted
    pixels blended in where it makes them. Returns what the stage returns."""
    def whole(event: Event) -> Event:
        if not isinstance(event, Preview):
            return event
        images = [_previewed(canvas, image, box, weight)
                  for canvas, image in zip(canvases, event.images, strict=True)]
        return replace(event, images=images, noisy=[])

    return mapped(stage, whole)


def _previewed(canvas: np.ndarray, window: Image.Image, box: Box,
               weight: np.ndarray) -> Image.Image:
    shown = canvas.copy()
    blend_window(shown, np.asarray(window.resize((MODEL_WINDOW, MODEL_WINDOW))), box, weight)
    return Image.fromarray(shown)
