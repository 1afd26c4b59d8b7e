"""Pictures in: decoding safely (size checked on the header), as a viewer shows them
(EXIF orientation applied), as 8-bit RGB."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from glide_ui.errors import RequestError

MAX_PIXELS = 50_000_000
"""Largest image (width x height) accepted; checked on the header, before decoding."""

ImageSource = bytes | bytearray | memoryview | str | Path | BinaryIO | Image.Image | np.ndarray

WHITE = (255, 255, 255)


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
        return check_size(_from_array(data), max_pixels)
    if isinstance(data, Image.Image):
        return upright(check_size(data, max_pixels))
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = io.BytesIO(bytes(data))
    if not isinstance(data, (str, Path)) and not hasattr(data, "read"):
        raise RequestError(f"A picture is a PIL image, an array, bytes, a path or a file, "
                           f"not {type(data).__name__}.")
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
    check_size(image, max_pixels)
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
        return Image.fromarray(to_8bit(np.asarray(image), image.mode)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE + (255,)),
                                     rgba).convert("RGB")
    return image.convert("RGB")


def to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
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


def check_size(image: Image.Image, max_pixels: int) -> Image.Image:
    width, height = image.size
    if width < 1 or height < 1:
        raise RequestError("The image is empty (0 pixels).")
    if width * height > max_pixels:
        raise RequestError(_too_large_message(image.size, max_pixels))
    return image


def _too_large_message(size: tuple[int, int] | None, max_pixels: int) -> str:
    what = f"{size[0]} x {size[1]} pixels" if size else "too many pixels"
    return f"The image is too large ({what}); the limit is {max_pixels / 1e6:g} megapixels."
