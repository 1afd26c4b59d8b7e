"""The upscaling request, declared by `glide_ui.settings` as every request is, and what it
checks beyond its settings: the picture (its size limit), the scale offered, the prompt
taken from the picture's recipe when none is typed."""

from __future__ import annotations

from typing import Any

from PIL import Image

from glide_ui.errors import RequestError
from glide_ui.images import read_recipe
from glide_ui.pipelines.events import Status
from glide_ui.pipelines.requests import _from_schema, _picture, register
from glide_ui.settings import MAX_UPSCALE_SIDE, UPSCALE_FACTORS

MODEL_WINDOW = 256
"""Side of an output window in result pixels: the upsampler's output, pixel for pixel."""


@_from_schema("upscale")
class UpscaleRequest:
    """`image` (at most MAX_UPSCALE_SIDE px a side) made `scale` times larger by the
    64 -> 256 inpainting upsampler in overlapping windows (see `pipelines.upscale`)."""


def source_window(scale: int) -> int:
    """Side of a window in source pixels: the part of the picture one 256 px output
    window enlarges (64 px at x4, 128 px at x2)."""
    return MODEL_WINDOW // scale


def _upscale_checks(request: UpscaleRequest, changes: dict, notices: list) -> dict:
    scale = changes["scale"]
    if scale not in UPSCALE_FACTORS:
        raise RequestError(f"Scale must be {' or '.join(map(str, UPSCALE_FACTORS))}; x{scale} "
                           "is not offered.")
    prompt = changes["prompt"] or _recipe_prompt(request.image, notices)
    image = _picture(request.image, "upscale", "upscaling")
    if max(image.size) > MAX_UPSCALE_SIDE:
        raise RequestError(f"The picture is {image.width} x {image.height} pixels; upscaling "
                           f"takes at most {MAX_UPSCALE_SIDE} x {MAX_UPSCALE_SIDE} (x4 of it "
                           f"is {MAX_UPSCALE_SIDE * 4} px). Crop or shrink it first.")
    window = source_window(scale)
    if min(image.size) < window:
        image = _enlarged(image, window, scale, notices)
    if not prompt:
        notices.append(Status("The prompt is empty and the picture carries no recipe: "
                              "upscaling without a text condition.", "warning"))
    return {"image": image, "prompt": prompt}


def _recipe_prompt(source: Any, notices: list) -> str:
    """The prompt of the recipe the picture carries ("" when it has none)."""
    if source is None or isinstance(source, (str, bytes)) and not source:
        return ""
    try:
        recipe = read_recipe(source)
    except (RequestError, OSError, TypeError, ValueError):
        return ""  # not an image: `_picture` says so
    if recipe is None or not recipe.prompt:
        return ""
    notices.append(Status(f"Prompt from the picture's recipe: {recipe.prompt!r}."))
    return recipe.prompt


def _enlarged(image: Image.Image, window: int, scale: int, notices: list) -> Image.Image:
    """`image` enlarged (bicubic, its shape kept) until its shorter side fills a window."""
    grow = window / min(image.size)
    size = (max(round(image.width * grow), window), max(round(image.height * grow), window))
    if max(size) > MAX_UPSCALE_SIDE:
        raise RequestError(f"The picture is {image.width} x {image.height} pixels: too narrow "
                           f"to upscale x{scale}, which needs {window} px on its shorter side "
                           f"and at most {MAX_UPSCALE_SIDE} on its longer one.")
    notices.append(Status(f"The picture is {image.width} x {image.height}: it is first "
                          f"enlarged to {size[0]} x {size[1]} (bicubic), the smallest that "
                          f"fills a {window} px window at x{scale}.", "warning"))
    return image.resize(size, Image.Resampling.BICUBIC)


register(UpscaleRequest, _upscale_checks)
