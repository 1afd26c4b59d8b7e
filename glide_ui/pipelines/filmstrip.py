"""Filmstrips: how each image formed, as an animated WebP and a contact sheet.

The samplers' steps become `Frame` events only at `kept_steps` (pipelines.common), at most
`filmstrip_frames` per stage, so what is held here is bounded by the frame count, never
by the number of steps. After a `Result`, a `Filmstrips` event gives one animation and one
sheet per image (the base's 64 px frames enlarged to the upsampler's size).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

from PIL import Image

from glide_ui.images import make_grid
from glide_ui.pipelines.events import Event, Filmstrips, Frame, Result

FRAME_MS = 120  # per frame of the animation
HOLD_MS = 1200  # the last frame stays a little longer
SHEET_COLUMNS = 8


def with_filmstrips(events: Iterator[Event]) -> Iterator[Event]:
    """Pass `events` on, collecting `Frame`s; after each `Result`, yield its `Filmstrips`
    (only when frames were kept)."""
    frames: list[Frame] = []
    with closing(events):  # closing the consumer stops the pipeline at once
        for event in events:
            if isinstance(event, Frame):
                frames.append(event)
            yield event
            if isinstance(event, Result) and frames:
                yield build(frames, [recipe.seed for recipe in event.recipes])
                frames = []


def filmstrips(pipeline: Callable[..., Iterator[Event]]) -> Callable[..., Iterator[Event]]:
    """Decorate a pipeline so its kept frames become `Filmstrips` after the result."""
    @functools.wraps(pipeline)
    def wrapped(*args: Any, **kwargs: Any) -> Iterator[Event]:
        return with_filmstrips(pipeline(*args, **kwargs))

    return wrapped


def build(frames: list[Frame], seeds: list[int]) -> Filmstrips:
    """An animated WebP (lossless) and a labelled contact sheet for each image (of
    `seeds`, in the frames' order)."""
    size = max(frame.images[0].width for frame in frames)
    labels = [f"{frame.stage} {frame.step}/{frame.total}" for frame in frames]
    animations, sheets = [], []
    for i in range(len(seeds)):
        pictures = [_enlarged(frame.images[i], size) for frame in frames]
        animations.append(animation(pictures))
        sheets.append(make_grid(pictures, cols=SHEET_COLUMNS, labels=labels))
    return Filmstrips(animations, sheets, list(seeds))


def animation(pictures: list[Image.Image]) -> bytes:
    """`pictures` as a looping animated WebP (lossless), the last frame held longer."""
    out = io.BytesIO()
    durations = [FRAME_MS] * (len(pictures) - 1) + [HOLD_MS]
    pictures[0].save(out, format="WEBP", save_all=True, append_images=pictures[1:],
                     duration=durations, loop=0, lossless=True)
    return out.getvalue()


def _enlarged(image: Image.Image, size: int) -> Image.Image:
    if image.width == size:
        return image
    return image.resize((size, size), Image.Resampling.NEAREST)
