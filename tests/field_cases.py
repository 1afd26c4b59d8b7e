"""The field cases of issue #12 (tests/fixtures/field_cases/) and the other forms of each kind
of input, written on demand: masks in every form a tool may save, PNGs that keep their text
in other chunks or places, pictures with every EXIF orientation."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from glide_ui.images import png_bytes

FIELD = Path(__file__).resolve().parent / "fixtures" / "field_cases"
PORTRAIT = FIELD / "photo_exif6_stored400x300.jpg"  # stored 400 x 300, shown 300 x 400
PORTRAIT_MASK = FIELD / "mask_for_exif6_upright300x400.png"
SQUARE = FIELD / "photo_exif6_square400.jpg"
SQUARE_MASK = FIELD / "mask_for_exif6_square_topleft.png"
PAINTED_BOX = (20, 20, 100, 100)  # left, top, right, bottom of both photos' masks (upright)
PICTURE = FIELD / "picture333x177.png"
OPAQUE_MASK = FIELD / "mask_opaque_L_white_is_repaint.png"
WHITE_BOX = (150, 70, 171, 93)  # the white rectangle of OPAQUE_MASK
RECIPE_AFTER_DATA = FIELD / "recipe_text_after_idat.png"
RECIPE_CONTROL = FIELD / "recipe_control.png"
RECIPE_DDIM10 = FIELD / "recipe_ddim10.png"

PHOTOS = [(PORTRAIT, PORTRAIT_MASK, (300, 400)), (SQUARE, SQUARE_MASK, (400, 400))]


def as_viewer_shows(path: Path) -> np.ndarray:
    """The RGB pixels of `path` turned as its EXIF says (Pillow's own exif_transpose)."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((size[1], size[0]), dtype=bool)
    mask[box[1]:box[3], box[0]:box[2]] = True
    return mask


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (np.asarray(before) != np.asarray(after)).any(axis=2)


# --- orientation --------------------------------------------------------------------------------

# EXIF orientation -> the turn that brings the stored pixels upright (Pillow's table); the
# stored pixels of an upright picture are made with the inverse turn.
_TO_STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # shown with ROTATE_270
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # shown with ROTATE_90
}


def with_orientation(upright: Image.Image, orientation: int, fmt: str = "PNG") -> bytes:
    """`upright` stored turned, with the EXIF orientation that a viewer undoes."""
    turn = _TO_STORED[orientation]
    stored = upright.transpose(turn) if turn is not None else upright.copy()
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, format=fmt, exif=exif.tobytes())
    return buffer.getvalue()


# --- masks ---------------------------------------------------------------------------------------


def mask_forms(folder: Path) -> dict[str, Path]:
    """The white box of OPAQUE_MASK saved in every file form another tool may send; each
    means the same mask (`box_mask(size, WHITE_BOX)`)."""
    grey = Image.open(OPAQUE_MASK)
    alpha = np.asarray(grey)
    red = np.zeros(alpha.shape + (4,), np.uint8)
    red[..., 0], red[..., 3] = 255, alpha
    brush = red.copy()
    brush[..., 3] = np.where(alpha > 0, 140, 0)  # the page's brush: 55 % opacity
    forms = {
        "opaque greyscale (L), the field file": grey,
        "bilevel (1)": grey.convert("1"),
        "RGB black and white": grey.convert("RGB"),
        "RGBA opaque black and white (what Gradio makes of an opaque layer)":
            grey.convert("RGBA"),
        "palette (P) black and white": grey.convert("P"),
        "16-bit greyscale (I;16)": Image.fromarray(alpha.astype(np.uint16) * 257),
        "soft grey edges (cut at mid-grey)": _soft_edges(grey),
        "transparent layer, painted opaque red": Image.fromarray(red, "RGBA"),
        "transparent layer, the page's 55 % brush": Image.fromarray(brush, "RGBA"),
        "greyscale + alpha (LA), painted = alpha": Image.merge(
            "LA", (Image.new("L", grey.size, 0), grey)),
    }
    paths = {}
    for index, (name, image) in enumerate(forms.items()):
        paths[name] = folder / f"mask-form-{index}.png"
        image.save(paths[name])
    paths["JPEG black and white"] = folder / "mask-form.jpg"
    grey.save(paths["JPEG black and white"], quality=90)
    return paths


def _soft_edges(grey: Image.Image) -> Image.Image:
    """The box with an anti-aliased edge, as a soft brush leaves it: its border row of
    pixels light grey (150: above mid-grey, repainted), a ring outside it dark grey (100:
    kept), blurred corners darker still."""
    levels = np.asarray(grey).astype(np.int16)
    inside = levels > 0
    border = inside & ~_shrunk(inside)
    ring = _grown(inside) & ~inside
    levels[border] = 150
    levels[ring] = 100
    return Image.fromarray(levels.astype(np.uint8))


def _grown(mask: np.ndarray) -> np.ndarray:
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    return grown


def _shrunk(mask: np.ndarray) -> np.ndarray:
    return ~_grown(~mask)


def unreadable_masks(folder: Path) -> dict[str, tuple[Path, str]]:
    """Masks that cannot be read one way only -> (file, what the refusal says)."""
    picture = Image.open(PICTURE)
    ramp = np.tile(np.linspace(60, 200, picture.width).astype(np.uint8), (picture.height, 1))
    cases = {
        "an opaque colour picture (the photo itself)": (picture, "opaque colour picture"),
        "the same, as Gradio hands it (RGBA, alpha 255)":
            (picture.convert("RGBA"), "opaque colour picture"),
        "a greyscale photo (mostly mid-grey)": (Image.fromarray(ramp), "mostly grey"),
    }
    paths = {}
    for index, (name, (image, message)) in enumerate(cases.items()):
        path = folder / f"unreadable-{index}.png"
        image.save(path)
        paths[name] = (path, message)
    return paths


# --- PNG text chunks ------------------------------------------------------------------------------


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data))


def text_chunk(kind: bytes, keyword: str, text: str, compressed: bool = False) -> bytes:
    """A tEXt, zTXt or iTXt chunk (PNG spec 11.3.4)."""
    key = keyword.encode("latin-1") + b"\0"
    if kind == b"tEXt":
        return chunk(kind, key + text.encode("latin-1"))
    if kind == b"zTXt":
        return chunk(kind, key + b"\0" + zlib.compress(text.encode("latin-1")))
    body = zlib.compress(text.encode("utf-8")) if compressed else text.encode("utf-8")
    return chunk(kind, key + bytes([int(compressed), 0]) + b"en\0" + b"\0" + body)


def split_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(kind, whole chunk bytes) of a PNG, in order (the signature left out)."""
    chunks, position = [], 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunks.append((kind, data[position:position + 12 + length]))
        position += 12 + length
    return chunks


def png_with_text(image: Image.Image | bytes, texts: list[bytes], after_data: bool,
                  data: bytes | None = None) -> bytes:
    """`image` (or PNG bytes) as a PNG holding the text chunks `texts` before or after its
    image data; `data` replaces the image data's chunks (e.g. with damaged ones)."""
    chunks = split_chunks(image if isinstance(image, bytes) else png_bytes(image))
    head = [whole for kind, whole in chunks if kind not in (b"IDAT", b"IEND")]
    idat = [whole for kind, whole in chunks if kind == b"IDAT"]
    if data is not None:
        idat = [chunk(b"IDAT", data)]
    body = head + (idat + texts if after_data else texts + idat)
    return b"\x89PNG\r\n\x1a\n" + b"".join(body) + chunk(b"IEND", b"")


def ihdr_only(width: int, height: int, texts: list[bytes]) -> bytes:
    """A PNG header of `width` x `height` whose data is a few bytes, then `texts`."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 64)) + b"".join(texts) + chunk(b"IEND", b"")
