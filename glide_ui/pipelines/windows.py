"""Window machinery the windowed jobs share (Outpaint, Upscale): windows evenly tiled along
a span, clipped views of a canvas under a window, and a window's stage events labelled.
Pure bookkeeping: no model here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from glide_ui.images import Box
from glide_ui.pipelines.common import StageEvents
from glide_ui.pipelines.events import Event, Frame, Preview, Progress


def place(start: int, stop: int, side: int, limit: int, toward: int | None = None) -> int:
    """Start of a window of `side` holding [start, stop): flush with its `toward` end (the
    outer edge: the rest of the window is known context), else centred on it; kept inside
    [0, limit) when it fits there, else centred on that."""
    if side >= limit:
        return (limit - side) // 2
    first = {stop: stop - side, start: start}.get(toward, (start + stop - side) // 2)
    return min(max(first, 0), limit - side)


def tiles(start: int, stop: int, side: int, overlap: int, limit: int) -> list[int]:
    """Starts of windows of `side` covering [start, stop), evenly spaced, neighbours
    overlapping by at least `overlap` (one centred window when it fits)."""
    span = stop - start
    if span <= side:
        return [place(start, stop, side, limit)]
    count = math.ceil((span - overlap) / (side - overlap))
    return [start + round(k * (span - side) / (count - 1)) for k in range(count)]


def inside(array: np.ndarray, box: Box) -> np.ndarray:
    """The view of `array` [H, W, ...] under `box`, clipped to it."""
    return array[max(box[1], 0):min(box[3], array.shape[0]),
                 max(box[0], 0):min(box[2], array.shape[1])]


def labelled(label: str, stage: StageEvents) -> StageEvents:
    """`stage`'s events with its stage name under `label` ("window 2/3 · base"); returns
    what it returns. Closing this closes the stage at once."""
    def relabel(event: Event) -> Event:
        if isinstance(event, (Progress, Preview, Frame)):
            return replace(event, stage=f"{label} · {event.stage}")
        return event

    return mapped(stage, relabel)


def mapped(stage: StageEvents, change: Callable[[Event], Event]) -> StageEvents:
    """`stage`'s events, each passed through `change`; returns what the stage returns.
    Closing this closes the stage at once."""
    try:
        while True:
            yield change(next(stage))
    except StopIteration as done:
        return done.value
    finally:
        stage.close()
