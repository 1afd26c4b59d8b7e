"""Masks: bool arrays [H, W], True = repaint (the models' own `inpaint_mask` is the opposite:
1 = known; the pipelines convert). Reading every form a mask comes in, and growing,
feathering and resizing it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from glide_ui.errors import RequestError
from glide_ui.images.decode import open_image, to_8bit

MASK_LEVEL = 128
"""An opaque mask repaints where its grey level is at least this (nearer white than black)."""
GREY_SPREAD = 24
"""An opaque mask is black-and-white (not a colour picture) when no pixel's R, G and B differ
by more than this (room for JPEG's colour noise)."""
MID_GREY = (64, 192)
"""Levels that are neither near black nor near white: a soft edge, or a photograph."""
MAX_MID_GREY_SHARE = 0.5
"""An opaque mask with more than this share of mid-grey pixels is refused as no mask."""


def read_mask(value: Any, size: tuple[int, int] | None = None) -> np.ndarray:
    """The repaint mask (bool [H, W], True = repaint) of a mask given as an array, a PIL
    image or a file. Every form is read by one rule, so the page, the HTTP API and Python
    agree (the page's editor values are read into one by `glide_ui.ui.editor_values`):

    - an image with transparent pixels (any alpha < 255): painted where alpha > 0 (the
      editor's brush strokes; their colour does not matter);
    - an opaque image (no alpha, or alpha 255 everywhere, which is what Gradio makes of an
      opaque layer): a black-and-white mask, white = repaint (the convention of other
      inpainting tools and diffusers), repainted where the grey level is >= MASK_LEVEL
      (128), so soft grey edges are cut at mid-grey;
    - arrays: bool (True = repaint), integer 0/1, uint8 levels as an opaque image, floats in
      [0, 1] (>= 0.5 = repaint), or H x W x 3/4 uint8 as an image.

    Refused (RequestError, before any work): no mask, an opaque colour picture, and an
    opaque grey image that is mostly mid-grey (more than MAX_MID_GREY_SHARE): neither is a
    mask that can be read one way only. `size` = (width, height) of the image the mask
    belongs to (upright); a mask of another size is an error.
    """
    if value is None:
        raise RequestError("No mask was given: paint over the part of the image to change.")
    mask = _layer_mask(value)
    return fit_mask(mask, size) if size is not None else mask


def paint_strokes(image: Image.Image, strokes: Any) -> tuple[Image.Image, np.ndarray]:
    """`image` (RGB) with coloured strokes painted on, and where they are (bool [H, W]).

    `strokes`: one layer, an RGBA image, array or file at the image's size, transparent
    where the picture is untouched (alpha > 0 marks a stroke, blended by its alpha), or a
    list of such layers painted in order (None: no strokes). Raises RequestError for a
    layer of another size or one without transparency.
    """
    layers = list(strokes) if isinstance(strokes, (list, tuple)) else [strokes]
    painted = image.convert("RGBA")
    region = np.zeros((image.height, image.width), dtype=bool)
    for layer in layers:
        if layer is None:
            continue
        rgba = open_image(layer).convert("RGBA")
        if rgba.size != image.size:
            raise RequestError(f"The strokes are {rgba.width} x {rgba.height} pixels but the "
                               f"picture is {image.width} x {image.height}; paint them on "
                               "the picture itself.")
        alpha = np.asarray(rgba)[:, :, 3]
        if (alpha == 255).all():
            raise RequestError("The strokes must be a transparent layer (RGBA) with the "
                               "strokes opaque and the rest transparent.")
        painted = Image.alpha_composite(painted, rgba)
        region |= alpha > 0
    return painted.convert("RGB"), region


def _layer_mask(layer: Any) -> np.ndarray:
    if isinstance(layer, np.ndarray):
        return _array_mask(np.asarray(layer))
    image = open_image(layer)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = Image.fromarray(to_8bit(np.asarray(image), image.mode))
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return _read_mask(rgba[:, :, :3], rgba[:, :, 3])
    if image.mode in ("1", "L"):
        return _read_mask(np.asarray(image.convert("L")))
    return _read_mask(np.asarray(image.convert("RGB")))


def _array_mask(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == bool and array.ndim == 2:
        return array.copy()
    if array.ndim == 2 and array.dtype.kind in "iu" and array.size and 0 <= array.min() \
            and array.max() <= 1:
        return array == 1
    if array.ndim == 2 and array.dtype.kind == "f":
        if not (np.isfinite(array).all() and 0 <= array.min() and array.max() <= 1):
            raise RequestError("A float mask array must hold values from 0 to 1.")
        return array >= 0.5
    if array.dtype != np.uint8:
        raise RequestError(f"A mask array must be bool, 0/1, floats in [0, 1] or uint8 "
                           f"levels, not {array.dtype}.")
    if array.ndim == 2:
        return _read_mask(array)
    if array.ndim == 3 and array.shape[2] == 4:
        return _read_mask(array[:, :, :3], array[:, :, 3])
    if array.ndim == 3 and array.shape[2] == 3:
        return _read_mask(array)
    raise RequestError(f"A mask array must be H x W, H x W x 3 or H x W x 4, not {array.shape}.")


def _read_mask(levels: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """The rule of `read_mask`: uint8 `levels` [H, W] or [H, W, 3], `alpha` [H, W]."""
    if alpha is not None and (alpha < 255).any():
        return alpha > 0
    if levels.ndim == 3:
        spread = levels.max(axis=2) - levels.min(axis=2)
        if (spread > GREY_SPREAD).any():
            raise RequestError(
                "The mask is an opaque colour picture, which cannot be read as a mask. Send "
                "a transparent layer painted where to repaint, or a black-and-white image "
                "with white where to repaint.")
        levels = levels.min(axis=2) + spread // 2
    mid_grey = ((levels >= MID_GREY[0]) & (levels < MID_GREY[1])).mean()
    if mid_grey > MAX_MID_GREY_SHARE:
        raise RequestError(
            f"The mask is mostly grey ({mid_grey:.0%} of its pixels are neither near black "
            "nor near white), so it cannot be read as a mask. Send a black-and-white image "
            f"(white = repaint; grey edges count from level {MASK_LEVEL}) or a transparent "
            "layer.")
    return levels >= MASK_LEVEL


def fit_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape != (size[1], size[0]):
        raise RequestError(f"The mask is {mask.shape[1]} x {mask.shape[0]} pixels but the "
                           f"image is {size[0]} x {size[1]}; paint the mask on the image itself.")
    return mask


def distance_to_mask(mask: np.ndarray, limit: float) -> np.ndarray:
    """Euclidean distance (float32) from each pixel to the nearest True pixel of `mask`.

    Exact for distances up to `limit`; farther pixels get +inf. Separable and windowed:
    O(H W limit) with numpy, no SciPy.
    """
    reach = int(math.ceil(limit))
    column = np.where(mask, 0.0, np.inf).astype(np.float32)  # distance along the column
    for k in range(1, reach + 1):
        column[:-k] = np.minimum(column[:-k], np.where(mask[k:], k, np.inf))
        column[k:] = np.minimum(column[k:], np.where(mask[:-k], k, np.inf))
    column2 = column * column
    squared = column2.copy()
    for k in range(1, reach + 1):
        squared[:, :-k] = np.minimum(squared[:, :-k], column2[:, k:] + k * k)
        squared[:, k:] = np.minimum(squared[:, k:], column2[:, :-k] + k * k)
    distance = np.sqrt(squared)
    distance[distance > limit] = np.inf
    return distance


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the True pixels (right/bottom exclusive), None if empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def grow_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate `mask` by a disc of radius `pixels` (every pixel within that distance).

    A negative `pixels` shrinks it (erosion): a pixel stays only when every pixel within
    -pixels of it is in the mask; the image's edge does not count as outside the mask.
    """
    bbox = mask_bbox(mask)
    if pixels == 0 or bbox is None:
        return mask.copy()
    reach = abs(pixels)
    window = _window(bbox, reach, mask.shape)  # erosion changes only the mask's own pixels
    out = mask.copy()
    if pixels > 0:
        out[window] = distance_to_mask(mask[window], reach) <= reach
    else:
        out[window] &= distance_to_mask(~mask[window], reach) > reach
    return out


def feather_alpha(mask: np.ndarray, feather: int) -> np.ndarray:
    """Paste weight (float32 [H, W] in [0, 1]): 1 on `mask`, falling linearly to 0 at
    `feather` pixels from it; exactly 0 at distance >= feather (those pixels are kept)."""
    alpha = mask.astype(np.float32)
    bbox = mask_bbox(mask)
    if feather <= 0 or bbox is None:
        return alpha
    window = _window(bbox, feather, mask.shape)
    distance = distance_to_mask(mask[window], feather)
    alpha[window] = np.clip(1.0 - distance / feather, 0.0, 1.0)
    return alpha


def _window(bbox: tuple[int, int, int, int], margin: int, shape: tuple[int, ...]):
    left, top, right, bottom = bbox
    return (slice(max(top - margin, 0), min(bottom + margin, shape[0])),
            slice(max(left - margin, 0), min(right + margin, shape[1])))


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """`mask` at `size` (int = square, or (width, height)) as a model sees it: a pixel is
    repainted if its area overlaps any painted pixel, so nothing painted is kept."""
    width, height = (size, size) if isinstance(size, int) else size
    rows = _any_over_spans(mask, height, axis=0)
    return _any_over_spans(rows, width, axis=1)


def _any_over_spans(mask: np.ndarray, count: int, axis: int) -> np.ndarray:
    """Along `axis`, cut the extent into `count` equal spans: True where a span overlaps
    a True pixel (prefix sums over the pixels each span touches)."""
    extent = mask.shape[axis]
    index = np.arange(count)
    start = index * extent // count  # exact integer floor / ceil of the span's edges
    stop = np.maximum(-(-(index + 1) * extent // count), start + 1)
    totals = np.cumsum(mask, axis=axis, dtype=np.int64)
    totals = np.concatenate([np.zeros_like(totals.take([0], axis=axis)), totals], axis=axis)
    return (totals.take(stop, axis=axis) - totals.take(start, axis=axis)) > 0
