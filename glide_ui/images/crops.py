"""The square crop around a mask that the inpainting models see, and pasting their result
back into the picture."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from glide_ui.errors import RequestError
from glide_ui.images.decode import to_rgb
from glide_ui.images.masks import grow_mask, mask_bbox, resize_mask

Box = tuple[int, int, int, int]


def crop_box(mask: np.ndarray, feather: int = 0, context: float = 0.25,
             min_context: int = 16) -> Box:
    """A square (left, top, right, bottom) around the True pixels of `mask` that holds them,
    a `feather` margin and some known context (`context` x the mask's size, at least
    `min_context` pixels) on every side. It stays inside the image where the image is
    large enough; otherwise it overhangs equally on the short side."""
    bbox = mask_bbox(mask)
    if bbox is None:
        raise RequestError("The mask is empty: paint over the part of the image to change.")
    height, width = mask.shape
    left, top, right, bottom = bbox
    extent = max(right - left, bottom - top)
    side = extent + 2 * (feather + max(min_context, math.ceil(context * extent)))
    side = min(side, max(width, height))
    x0, y0 = _place(left, right, side, width), _place(top, bottom, side, height)
    return x0, y0, x0 + side, y0 + side


def _place(start: int, stop: int, side: int, limit: int) -> int:
    """Start of a segment of length `side` centred on [start, stop), kept inside [0, limit)
    when it fits, else centred on the whole range."""
    if side >= limit:
        return (limit - side) // 2
    return min(max((start + stop - side) // 2, 0), limit - side)


def crop(image: Image.Image, box: Box, fill: tuple[int, int, int] = (127, 127, 127)) \
        -> Image.Image:
    """`image` cropped to `box`, parts outside the image filled with `fill`."""
    canvas = Image.new("RGB", (box[2] - box[0], box[3] - box[1]), fill)
    canvas.paste(image.crop(_clip(box, image.size)), (max(-box[0], 0), max(-box[1], 0)))
    return canvas


def crop_mask(mask: np.ndarray, box: Box, outside: bool = True) -> np.ndarray:
    """`mask` cropped to `box`; pixels outside the image are `outside` (default: repaint)."""
    left, top, right, bottom = box
    out = np.full((bottom - top, right - left), outside, dtype=bool)
    x0, y0, x1, y1 = _clip(box, (mask.shape[1], mask.shape[0]))
    out[y0 - top:y1 - top, x0 - left:x1 - left] = mask[y0:y1, x0:x1]
    return out


def _clip(box: Box, size: tuple[int, int]) -> Box:
    return max(box[0], 0), max(box[1], 0), min(box[2], size[0]), min(box[3], size[1])


def paste_back(original: Image.Image, patch: Image.Image, box: Box, alpha: np.ndarray) \
        -> Image.Image:
    """Blend `patch` (any size, covering `box`) into `original` with weight `alpha`
    ([H, W] at the original's size). Pixels where alpha == 0 are returned unchanged."""
    patch = patch.resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.BICUBIC)
    x0, y0, x1, y1 = _clip(box, original.size)
    region = np.asarray(patch)[y0 - box[1]:y1 - box[1], x0 - box[0]:x1 - box[0]]
    base = np.array(to_rgb(original), dtype=np.uint8)
    weight = alpha[y0:y1, x0:x1, None]
    known = base[y0:y1, x0:x1]
    blended = (known * (1.0 - weight) + region * weight).round().clip(0, 255).astype(np.uint8)
    base[y0:y1, x0:x1] = np.where(weight > 0, blended, known)
    return Image.fromarray(base, "RGB")


def mask_preview(image: Image.Image, mask: np.ndarray, grow: int = 0, size: int = 64,
                 display: int = 256) -> Image.Image:
    """What the base inpainting model sees: the crop around the (grown) mask at `size` px,
    repainted pixels tinted red, shown enlarged (nearest) to `display` px."""
    grown = grow_mask(mask, grow)
    box = crop_box(grown)
    small = crop(to_rgb(image), box).resize((size, size), Image.Resampling.BICUBIC)
    repaint = resize_mask(crop_mask(grown, box), size)
    pixels = np.asarray(small, dtype=np.float32)
    tint = np.array([255.0, 40.0, 40.0], dtype=np.float32)
    pixels[repaint] = 0.4 * pixels[repaint] + 0.6 * tint
    preview = Image.fromarray(pixels.round().astype(np.uint8), "RGB")
    return preview.resize((display, display), Image.Resampling.NEAREST)
