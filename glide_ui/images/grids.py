"""Labelled grids of pictures (sweeps, filmstrips)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from glide_ui.images.decode import WHITE, to_rgb


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
                             rows * (cell_h + strip) + (rows + 1) * gap), WHITE)
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
