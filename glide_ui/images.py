"""Images in and out: safe decoding, tensors <-> PIL, masks, labelled grids, PNG metadata.

Conventions: model images are float tensors in [-1, 1], NCHW; 8-bit value p <-> p / 127.5 - 1,
and the way back rounds like the reference (`((x + 1) * 127.5).round().clamp(0, 255)`).
Masks are bool arrays [H, W] with True = repaint (the models' own `inpaint_mask` is the
opposite: 1 = known; the pipelines convert). Every picture is decoded as a viewer shows it
(EXIF orientation applied, see `upright`).
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import (
    ExifTags,
    Image,
    ImageDraw,
    ImageFont,
    ImageOps,
    PngImagePlugin,
    UnidentifiedImageError,
)

from glide_ui.errors import RequestError
from glide_ui.files import write_replacing
from glide_ui.recipe import Recipe

MAX_PIXELS = 50_000_000
"""Largest image (width x height) accepted; checked on the header, before decoding."""

ImageSource = bytes | bytearray | memoryview | str | Path | BinaryIO | Image.Image | np.ndarray

PNG_PARAMETERS_KEY = "parameters"
PNG_RECIPE_KEY = "glide-ui"

_WHITE = (255, 255, 255)


# --- decoding -------------------------------------------------------------------------------


def open_image(data: ImageSource, max_pixels: int = MAX_PIXELS, decode: bool = True) \
        -> Image.Image:
    """Open `data` as a PIL image (first frame) as a viewer shows it, refusing non-images
    and oversized ones.

    The size is checked on the header, before any pixel is decoded, so a decompression bomb
    costs nothing. The mode is left as stored (see `load_image` for RGB); the EXIF
    orientation is applied (`upright`). With `decode=False` the pixels are not decoded
    (enough to read the header's metadata; the size is then the stored one).
    """
    if isinstance(data, np.ndarray):
        return _check_size(_from_array(data), max_pixels)
    if isinstance(data, Image.Image):
        return upright(_check_size(data, max_pixels))
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = io.BytesIO(bytes(data))
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns at a higher limit; ours is stricter and runs first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(data)
    except Image.DecompressionBombError as error:
        raise RequestError(_too_large_message(None, max_pixels)) from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise RequestError("The file is not an image that can be read (PNG, JPEG, WebP, "
                           "GIF, BMP, TIFF...).") from error
    _check_size(image, max_pixels)
    if not decode:
        return image
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise RequestError("The image file is damaged or truncated and cannot be decoded.") \
            from error
    return upright(image)


def upright(image: Image.Image) -> Image.Image:
    """`image` as a viewer shows it: cameras store the sensor's pixels and the way to turn
    them in the EXIF Orientation tag; this applies the turn (or flip) and drops the tag,
    so applying it twice changes nothing. Images without the tag come back as they are."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, ValueError, SyntaxError, struct.error, TypeError):
        return image  # unreadable EXIF: viewers show the stored pixels too
    if orientation not in range(2, 9):
        return image
    return ImageOps.exif_transpose(image)


def load_image(data: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode `data` safely into an RGB image.

    Animated images give their first frame; CMYK, palette, greyscale and 16/32-bit images
    are converted; transparency is composited on white. Raises RequestError for anything
    that is not a decodable image of at most `max_pixels` pixels.
    """
    return to_rgb(open_image(data, max_pixels))


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB: high bit depths scaled down, transparency composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return Image.fromarray(_to_8bit(np.asarray(image), image.mode)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE + (255,)),
                                     rgba).convert("RGB")
    return image.convert("RGB")


def _to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    values = values.astype(np.float64)
    if mode.startswith("I;16"):
        values = values / 257.0
    elif mode == "F" and values.size and np.nanmax(values) <= 1.0:
        values = values * 255.0
    elif mode == "I" and values.size and values.max() > 255:
        values = values / 257.0  # 32-bit container of 16-bit samples (e.g. 16-bit PNG)
    return np.nan_to_num(values).round().clip(0, 255).astype(np.uint8)


def _from_array(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise RequestError("Image arrays must be 8-bit (uint8).")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise RequestError(f"An image array must be H x W, H x W x 3 or H x W x 4, "
                           f"not {tuple(array.shape)}.")
    return Image.fromarray(array)


def _check_size(image: Image.Image, max_pixels: int) -> Image.Image:
    width, height = image.size
    if width < 1 or height < 1:
        raise RequestError("The image is empty (0 pixels).")
    if width * height > max_pixels:
        raise RequestError(_too_large_message(image.size, max_pixels))
    return image


def _too_large_message(size: tuple[int, int] | None, max_pixels: int) -> str:
    what = f"{size[0]} x {size[1]} pixels" if size else "too many pixels"
    return f"The image is too large ({what}); the limit is {max_pixels / 1e6:g} megapixels."


# --- tensors ----------------------------------------------------------------------------------


def pil_to_tensor(images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
    """RGB images of one size -> float32 [N, 3, H, W] in [-1, 1] (p / 127.5 - 1)."""
    if isinstance(images, Image.Image):
        images = [images]
    arrays = np.stack([np.asarray(to_rgb(image), dtype=np.uint8) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 levels, rounded as the reference does (half to even)."""
    return ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round `x` to the nearest 8-bit level and back to [-1, 1], as the reference does
    with the base sample before it conditions the upsampler."""
    return to_uint8(x).float() / 127.5 - 1.0


def tensor_to_pil(x: torch.Tensor) -> list[Image.Image]:
    """[N, 3, H, W] (or [3, H, W]) in [-1, 1] -> list of RGB images (rounded as `to_uint8`).

    On the CPU the arithmetic runs in numpy: the same float32 operations, so the same
    levels, but single-threaded, which is several times faster for a preview than torch's
    thread pool when the cores are busy sampling.
    """
    if x.dim() == 3:
        x = x[None]
    if x.device.type == "cpu":
        values = x.detach().float().numpy()
        levels = np.clip(np.round((values + 1) * 127.5), 0, 255).astype(np.uint8)
    else:
        levels = to_uint8(x).cpu().numpy()
    return [Image.fromarray(array) for array in np.ascontiguousarray(levels.transpose(0, 2, 3, 1))]


# --- masks ------------------------------------------------------------------------------------


MASK_LEVEL = 128
"""An opaque mask repaints where its grey level is at least this (nearer white than black)."""
GREY_SPREAD = 24
"""An opaque mask is black-and-white (not a colour picture) when no pixel's R, G and B differ
by more than this (room for JPEG's colour noise)."""
MID_GREY = (64, 192)
"""Levels that are neither near black nor near white: a soft edge, or a photograph."""
MAX_MID_GREY_SHARE = 0.5
"""An opaque mask with more than this share of mid-grey pixels is refused as no mask."""


def mask_from_editor(value: Any, size: tuple[int, int] | None = None) -> np.ndarray:
    """The repaint mask (bool [H, W], True = repaint) from a mask editor value or a bare mask.

    `value` is Gradio's ImageMask/ImageEditor value `{"background", "layers", "composite"}`
    (images as arrays, PIL images or files): the mask is the union of its layers. A bare
    mask (array, PIL image, file) is read the same way as one layer. Each layer, whatever
    its mode, is read by one rule, so the page, the HTTP API and Python agree:

    - a layer with transparent pixels (any alpha < 255): painted where alpha > 0 (the
      editor's brush strokes; their colour does not matter);
    - an opaque image (no alpha, or alpha 255 everywhere, which is what Gradio makes of an
      opaque layer): a black-and-white mask, white = repaint (the convention of other
      inpainting tools and diffusers), repainted where the grey level is >= MASK_LEVEL
      (128), so soft grey edges are cut at mid-grey;
    - arrays: bool (True = repaint), integer 0/1, uint8 levels as an opaque image, floats in
      [0, 1] (>= 0.5 = repaint), or H x W x 3/4 uint8 as an image.

    Refused (RequestError, before any work): an opaque colour picture, and an opaque grey
    image that is mostly mid-grey (more than MAX_MID_GREY_SHARE): neither is a mask that
    can be read one way only. `size` = (width, height) of the image the mask belongs to
    (upright); a mask of another size is an error.
    """
    if isinstance(value, dict):
        layers = [_layer_mask(layer) for layer in value.get("layers") or [] if layer is not None]
        if size is None:
            background = value.get("background")
            if background is not None:
                size = open_image(background).size
            elif layers:
                size = layers[0].shape[::-1]
        if size is None:
            raise RequestError("The mask editor is empty: upload an image first.")
        mask = np.zeros((size[1], size[0]), dtype=bool)
        for layer in layers:
            mask |= _fit(layer, size)
        return mask
    if value is None:
        raise RequestError("No mask was given: paint over the part of the image to change.")
    mask = _layer_mask(value)
    return _fit(mask, size) if size is not None else mask


def editor_background(value: Any, action: str = "inpaint") -> Image.Image:
    """The uploaded image (RGB, upright) of a mask editor value. Raises RequestError ("Upload
    an image to `action` first.") when there is none."""
    background = value.get("background") if isinstance(value, dict) else None
    if background is None:
        raise RequestError(f"Upload an image to {action} first.")
    return load_image(background)


def paint_strokes(image: Image.Image, strokes: Any) -> tuple[Image.Image, np.ndarray]:
    """`image` (RGB) with coloured strokes painted on, and where they are (bool [H, W]).

    `strokes`: an image editor value (its `layers` are painted in order; its background is
    not read) or one layer: an RGBA image, array or file at the image's size, transparent
    where the picture is untouched (alpha > 0 marks a stroke, blended by its alpha).
    Raises RequestError for a layer of another size or one without transparency.
    """
    layers = (strokes.get("layers") or []) if isinstance(strokes, dict) else [strokes]
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
        image = Image.fromarray(_to_8bit(np.asarray(image), image.mode))
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
    """The rule of `mask_from_editor`: uint8 `levels` [H, W] or [H, W, 3], `alpha` [H, W]."""
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


def _fit(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
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


# --- grids ------------------------------------------------------------------------------------


def make_grid(images: Sequence[Image.Image], cols: int | None = None,
              labels: Sequence[str] | None = None, gap: int = 4) -> Image.Image:
    """Tile `images` (cells sized to the largest) `cols` per row on white, each with its
    label (if any) written in a strip above it."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    cols = max(1, min(cols or len(images), len(images)))
    rows = math.ceil(len(images) / cols)
    cell_w = max(image.width for image in images)
    cell_h = max(image.height for image in images)
    font = _font()
    strip = _text_height(font) + 6 if labels else 0
    grid = Image.new("RGB", (cols * cell_w + (cols + 1) * gap,
                             rows * (cell_h + strip) + (rows + 1) * gap), _WHITE)
    draw = ImageDraw.Draw(grid)
    for index, image in enumerate(images):
        x = gap + (index % cols) * (cell_w + gap)
        y = gap + (index // cols) * (cell_h + strip + gap)
        if labels:
            draw.text((x + 2, y + 2), _fit_text(draw, labels[index], font, cell_w - 4),
                      fill=(0, 0, 0), font=font)
        grid.paste(to_rgb(image), (x, y + strip))
    return grid


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=14)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_height(font: Any) -> int:
    left, top, right, bottom = font.getbbox("Ag")
    return int(bottom)


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    text = " ".join(text.split())
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


# --- PNG metadata -----------------------------------------------------------------------------


def png_bytes(image: Image.Image, recipe: Recipe | None = None,
              text: Mapping[str, str] | None = None) -> bytes:
    """`image` as PNG bytes, with `recipe` in text chunks when given: a readable
    `parameters` line (the style of other diffusion UIs) and the full recipe as JSON;
    `text` adds more chunks (keyword -> value)."""
    info = PngImagePlugin.PngInfo()
    chunks = dict(png_text(recipe)) if recipe is not None else {}
    chunks.update(text or {})
    for key, value in chunks.items():
        info.add_text(key, value)  # iTXt when not Latin-1
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def png_text(recipe: Recipe) -> dict[str, str]:
    """The PNG text chunks that carry `recipe` (see `png_bytes`)."""
    return {PNG_PARAMETERS_KEY: recipe.parameters_line(), PNG_RECIPE_KEY: recipe.to_json()}


def save_png(image: Image.Image, path: str | Path, recipe: Recipe | None = None) -> Path:
    """Write `image` (with `recipe`, see `png_bytes`) as a PNG file at `path`, replacing
    a file there in one step (never half written). Raises OSError."""
    return write_replacing(path, png_bytes(image, recipe))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_CHUNK = PngImagePlugin.MAX_TEXT_CHUNK
"""Largest text chunk read (after decompression), as Pillow's limit; bigger ones are skipped."""


def read_png_text(source: ImageSource) -> dict[str, str]:
    """Every text chunk of a PNG (tEXt, zTXt, iTXt; before or after the image data, where
    editors and converters may move them), keyword -> text; later chunks win.

    The chunks are read from the file, skipping the image data unread: no pixel is decoded.
    The header's size is checked first (RequestError if over MAX_PIXELS, or not an image);
    other formats give the text Pillow reads from their header. Damaged or oversized text
    chunks are skipped; reading stops at a truncation.
    """
    if isinstance(source, Image.Image):
        return _info_text(_check_size(source, MAX_PIXELS))
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    if isinstance(source, (str, Path)):
        with open(source, "rb") as file:
            return _read_text(file)
    return _read_text(source)


def _read_text(stream: BinaryIO) -> dict[str, str]:
    start = stream.tell()
    with open_image(stream, decode=False) as image:  # header: an image of an allowed size
        if image.format != "PNG":
            return _info_text(image)
    stream.seek(start)
    return dict(_png_text_chunks(stream))


def _info_text(image: Image.Image) -> dict[str, str]:
    info = dict(image.info)
    if isinstance(image, PngImagePlugin.PngImageFile):
        info.update(image.text)  # the text after the image data too (decodes it: size checked)
    return {k: v for k, v in info.items() if isinstance(k, str) and isinstance(v, str)}


def _png_text_chunks(stream: BinaryIO):
    """(keyword, text) of each readable text chunk of the PNG `stream`, in file order."""
    if stream.read(8) != PNG_SIGNATURE:
        return
    while True:
        header = stream.read(8)
        if len(header) < 8:
            return
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            return
        if kind not in (b"tEXt", b"zTXt", b"iTXt") or length > MAX_TEXT_CHUNK:
            stream.seek(length + 4, io.SEEK_CUR)  # the data and its CRC, unread
            continue
        data, crc = stream.read(length), stream.read(4)
        if len(crc) < 4:
            return
        if zlib.crc32(kind + data) != struct.unpack(">I", crc)[0]:
            continue
        entry = _text_chunk(kind, data)
        if entry is not None:
            yield entry


def _text_chunk(kind: bytes, data: bytes) -> tuple[str, str] | None:
    """The (keyword, text) of a tEXt / zTXt / iTXt chunk's data (PNG spec 11.3.4), or None
    when it is malformed or inflates beyond MAX_TEXT_CHUNK."""
    keyword, sep, rest = data.partition(b"\0")
    if not sep or not 1 <= len(keyword) <= 79:
        return None
    try:
        if kind == b"tEXt":
            return keyword.decode("latin-1"), rest.decode("latin-1")
        if kind == b"zTXt":
            text = _inflate(rest[1:]) if rest[:1] == b"\0" else None
            return None if text is None else (keyword.decode("latin-1"), text.decode("latin-1"))
        compressed, method, rest = rest[0], rest[1], rest[2:]
        _language, _, rest = rest.partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        if compressed:
            text = _inflate(text) if method == 0 else None
        return None if text is None else (keyword.decode("latin-1"), text.decode("utf-8"))
    except (IndexError, UnicodeDecodeError):
        return None


def _inflate(data: bytes) -> bytes | None:
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, MAX_TEXT_CHUNK)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else text


def read_recipe(source: ImageSource) -> Recipe | None:
    """The recipe in an image written by `save_png`/`png_bytes` (path, bytes, file or PIL
    image), wherever the PNG keeps its text (see `read_png_text`), or None when it has none
    or it is unreadable. RequestError if not an image or over the size limit."""
    text = read_png_text(source).get(PNG_RECIPE_KEY)
    if text is None:
        return None
    try:
        return Recipe.from_json(text)
    except (ValueError, TypeError, KeyError):
        return None
