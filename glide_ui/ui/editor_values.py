"""Reading the values of the page's image editors (Gradio's `{"background", "layers",
"composite"}`, images as arrays, PIL images or files) into what a request takes: a
picture, a mask array, stroke layers. Below the page's widgets: no gradio here."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from glide_ui.errors import RequestError
from glide_ui.images import fit_mask, load_image, open_image, read_mask


def editor_background(value: Any, action: str = "inpaint") -> Image.Image:
    """The uploaded image (RGB, upright) of an editor value. Raises RequestError ("Upload
    an image to `action` first.") when there is none."""
    background = value.get("background") if isinstance(value, dict) else None
    if background is None:
        raise RequestError(f"Upload an image to {action} first.")
    return load_image(background)


def mask_from_editor(value: Any, size: tuple[int, int] | None = None) -> np.ndarray:
    """The repaint mask (bool [H, W], True = repaint) of a mask editor value: the union of
    its layers, each read as `glide_ui.images.read_mask` reads a mask; a bare mask (array,
    PIL image, file) is read as one layer. `size` = (width, height) of the picture
    (default: the background's, else the first layer's); a layer of another size, or an
    editor with neither background nor layers, is a RequestError."""
    if not isinstance(value, dict):
        return read_mask(value, size)
    layers = [read_mask(layer) for layer in value.get("layers") or [] if layer is not None]
    if size is None and value.get("background") is not None:
        size = open_image(value["background"]).size
    if size is None and layers:
        size = layers[0].shape[::-1]
    if size is None:
        raise RequestError("The mask editor is empty: upload an image first.")
    mask = np.zeros((size[1], size[0]), dtype=bool)
    for layer in layers:
        mask |= fit_mask(layer, size)
    return mask


def editor_strokes(value: Any) -> list[Any] | None:
    """The stroke layers of a sketch editor value, to paint in order (its background is
    not read), or None when it has none."""
    layers = [layer for layer in (value.get("layers") or [] if isinstance(value, dict)
                                  else []) if layer is not None]
    return layers or None
