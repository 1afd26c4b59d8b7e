"""Mask tools: shapes given by coordinates, and the region a request repaints (the painted
mask with its shapes, inverted when the brush marks what to keep, then grown or shrunk).

Shapes are written `kind:x0,y0,x1,y1`, several joined by ";", e.g.
`rect:40,30,200,120; ellipse:250,60,330,140`: `rect` fills the box, `ellipse` the ellipse
inscribed in it. Coordinates are pixels of the upright picture (x to the right, y down;
x1 and y1 exclusive, as in PIL's boxes); parts outside the picture are left out.
"""

from __future__ import annotations

import re

import numpy as np

from glide_ui.errors import RequestError
from glide_ui.images import grow_mask

SHAPE_KINDS = ("rect", "ellipse")
MAX_SHAPES = 64
MAX_SHAPE_CHARS = 4000
SHAPE_FORMAT = "'rect:x0,y0,x1,y1' or 'ellipse:x0,y0,x1,y1' (pixels; several joined by ';')"
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse_shapes(spec: object) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The (kind, box) of each shape in `spec` (see the module docstring); [] for "" or
    None. RequestError naming the part that cannot be read."""
    if spec is None:
        return []
    if not isinstance(spec, str) or len(spec) > MAX_SHAPE_CHARS:
        raise RequestError(f"Mask shapes must be text such as {SHAPE_FORMAT}.")
    parts = [part.strip() for part in spec.split(";") if part.strip()]
    if len(parts) > MAX_SHAPES:
        raise RequestError(f"Give at most {MAX_SHAPES} mask shapes, not {len(parts)}.")
    return [_shape(part) for part in parts]


def _shape(part: str) -> tuple[str, tuple[float, float, float, float]]:
    kind, _, numbers = part.partition(":")
    kind = kind.strip().lower()
    values = [value.strip() for value in numbers.split(",")]
    if kind not in SHAPE_KINDS or len(values) != 4 or not all(map(_NUMBER.match, values)):
        raise RequestError(f"Cannot read the mask shape {part!r}: write {SHAPE_FORMAT}.")
    x0, y0, x1, y1 = (float(value) for value in values)
    if x1 <= x0 or y1 <= y0:
        raise RequestError(f"The mask shape {part!r} is empty: x1 must be greater than x0 "
                           "and y1 greater than y0.")
    return kind, (x0, y0, x1, y1)


def shape_mask(spec: object, size: tuple[int, int]) -> np.ndarray:
    """The union of the shapes in `spec` as a bool mask [H, W] for a picture of `size`
    (width, height). A pixel is in a shape when its centre is. RequestError for a shape
    that cannot be read or that misses the picture entirely."""
    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    ys, xs = np.arange(height) + 0.5, np.arange(width) + 0.5
    for kind, (x0, y0, x1, y1) in parse_shapes(spec):
        if kind == "rect":
            inside = ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
        else:
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            inside = ((ys[:, None] - cy) / ry) ** 2 + ((xs[None, :] - cx) / rx) ** 2 <= 1
        if not inside.any():
            raise RequestError(f"The mask shape {kind}:{x0:g},{y0:g},{x1:g},{y1:g} lies "
                               f"outside the {width} x {height} picture.")
        mask |= inside
    return mask


def repaint_mask(painted: np.ndarray, shapes: str = "", invert: bool = False,
                 grow: int = 0) -> np.ndarray:
    """The region to repaint (bool [H, W]): the `painted` mask united with `shapes`,
    inverted when `invert` (the brush marked what to keep), then grown by `grow` pixels
    (shrunk when negative). RequestError when nothing is left to repaint."""
    mask = (painted | shape_mask(shapes, painted.shape[::-1])) if shapes else painted
    if invert:
        mask = ~mask
    if not mask.any():
        raise RequestError(
            "The mask keeps the whole picture: nothing is left to repaint. Leave part of "
            "it unpainted, or turn off 'Paint what to keep' (--invert, mask_invert)." if invert else
            "The mask is empty: paint over the part of the image to change (in a "
            "black-and-white mask, white marks what to repaint).")
    grown = grow_mask(mask, grow)
    if not grown.any():
        raise RequestError(f"Shrinking the mask by {-grow} px leaves nothing to repaint; "
                           "shrink it less.")
    return grown
