"""PNG text chunks: the recipe written into every PNG, and read back from any PNG without
decoding its pixels."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from PIL import Image, PngImagePlugin

from glide_ui.files import write_replacing
from glide_ui.images.decode import MAX_PIXELS, ImageSource, check_size, open_image
from glide_ui.recipe import Recipe

PNG_PARAMETERS_KEY = "parameters"
PNG_RECIPE_KEY = "glide-ui"


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
        return _info_text(check_size(source, MAX_PIXELS))
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
