"""Awkward files a stranger may upload, written on demand for the robustness tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (96, 80)  # width, height of the ordinary test pictures


def _gradient(size: tuple[int, int] = SIZE) -> np.ndarray:
    """An RGB picture with some structure (uint8 [H, W, 3])."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1) \
        .astype(np.uint8)


def rgb_png(folder: Path, name: str = "rgb.png", size: tuple[int, int] = SIZE) -> Path:
    path = folder / name
    Image.fromarray(_gradient(size)).save(path)
    return path


def rgba_png(folder: Path) -> Path:
    rgba = np.dstack([_gradient(), np.full(SIZE[::-1], 128, np.uint8)])
    path = folder / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def cmyk_jpeg(folder: Path) -> Path:
    path = folder / "cmyk.jpg"
    Image.fromarray(_gradient()).convert("CMYK").save(path, quality=95)
    return path


def png_16bit(folder: Path) -> Path:
    levels = _gradient()[:, :, 0].astype(np.uint16) * 257
    path = folder / "grey16.png"
    image = Image.fromarray(levels)
    assert image.mode == "I;16"
    image.save(path)
    return path


def animated_gif(folder: Path) -> Path:
    frames = [Image.fromarray(np.roll(_gradient(), 10 * i, axis=1)).convert("P")
              for i in range(3)]
    path = folder / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def mask_layer(folder: Path, size: tuple[int, int] = SIZE, box: tuple | None = None,
               name: str = "mask.png", opacity: int = 255) -> Path:
    """A transparent layer painted red at `opacity` (alpha) inside `box` (default: the
    middle third); box="all" paints every pixel, box="none" nothing. (Painted all over at
    opacity 255 it has no transparent pixel left: an opaque colour picture, not a mask.)"""
    width, height = size
    alpha = np.zeros((height, width), np.uint8)
    if box == "all":
        alpha[:] = opacity
    elif box != "none":
        left, top, right, bottom = box or (width // 3, height // 3, 2 * width // 3,
                                           2 * height // 3)
        alpha[top:bottom, left:right] = opacity
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = alpha
    path = folder / name
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def huge_png(folder: Path, size: tuple[int, int] = (8000, 6400)) -> Path:
    """A real, fully decodable PNG of 51.2 megapixels (one colour, so a small file)."""
    path = folder / "huge.png"
    Image.new("L", size, 90).save(path, optimize=False)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb(folder: Path, side: int = 20_000) -> Path:
    """A valid greyscale PNG of side x side pixels (400 megapixels, 400 MB decoded) that
    is about 400 kB on disk: rows of zeros compress about a thousandfold.

    The deflate stream is one compressed block of rows repeated (each ends on a full
    flush, so the copies are independent), which takes a fraction of a second to build.
    """
    rows_per_block = 1000
    block = b"\x00" * ((side + 1) * rows_per_block)  # each row: filter byte + pixels
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = raw.compress(block) + raw.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(side // rows_per_block):
        checksum = zlib.adler32(block, checksum)
    body = (b"\x78\xda" + segment * (side // rows_per_block) + b"\x03\x00"
            + struct.pack(">I", checksum))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path = folder / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body)
                     + _chunk(b"IEND", b""))
    return path


def text_file(folder: Path, name: str = "notes.png") -> Path:
    path = folder / name
    path.write_text("this is not a picture, whatever its name says")
    return path


def big_file(folder: Path, megabytes: int = 30) -> Path:
    """A file over the 25 MB (MiB) upload limit: random bytes named .png."""
    path = folder / "big.png"
    path.write_bytes(np.random.default_rng(0).bytes(megabytes * 1_000_000 + 1))
    return path
