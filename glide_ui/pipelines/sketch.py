"""Sketch-guided editing: coloured strokes on a picture plus a caption (text-conditional
SDEdit, Meng et al. 2021, arXiv:2108.01073, as in the GLIDE paper's editing figures).

The strokes' region is repainted by the inpainting models exactly as `inpaint` does it
(crop around the region, base-inpaint at 64 px with classifier-free guidance, then
upsample-inpaint at 256 px, the known region pasted into every x0 prediction, pasted back
with a `mask_feather` px soft edge), except that each stage starts part-way: from the
picture with the strokes painted on, noised to the step the strength picks. So the result
follows the sketch's layout and colours and the caption's content.

Strength 0 returns the picture with its strokes unchanged (no model runs); strength 1
ignores the strokes' pixels (plain inpainting of their region with that seed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from glide_ui.pipelines.common import begin, make_recipes
from glide_ui.pipelines.events import Event, Result
from glide_ui.pipelines.filmstrip import filmstrips
from glide_ui.pipelines.inpaint import input_record, repaint, repaint_models
from glide_ui.pipelines.requests import SketchRequest


@filmstrips
def sketch(request: SketchRequest, manager: Any) -> Iterator[Event]:
    """Repaint the strokes' region of `request.image` from the strokes; see the module
    docstring. Raises RequestError (before any work) for a bad request, e.g. no strokes
    or a strength outside [0, 1]."""
    request, seeds = yield from begin(request)
    if request.strength == 0.0:
        recipes = make_recipes("sketch", request, seeds, manager, repaint_models(request),
                               **input_record(request.image, request.mask))
        yield Result([request.image.copy() for _ in seeds], recipes)
        return
    yield from repaint("sketch", request, seeds, manager, request.strength)
