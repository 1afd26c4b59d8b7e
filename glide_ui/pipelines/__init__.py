"""Pipelines: one request in, a stream of events out. No gradio here.

Each pipeline is a generator of events (`Status`, `Progress`, `Preview`, then one
`Result`); `glide_ui.Glide` runs them for Python callers, the page and the CLI render them.
"""

from glide_ui.pipelines.clip_guided import clip_guided
from glide_ui.pipelines.events import Event, Preview, Progress, Result, Status
from glide_ui.pipelines.inpaint import inpaint
from glide_ui.pipelines.outpaint import outpaint
from glide_ui.pipelines.rank import rank, rank_result, ranked, ranked_run
from glide_ui.pipelines.requests import (
    ClipGuidedRequest,
    InpaintRequest,
    OutpaintRequest,
    Request,
    SketchRequest,
    Text2ImRequest,
    VariationsRequest,
    request_from_recipe,
    validate,
)
from glide_ui.pipelines.sketch import sketch
from glide_ui.pipelines.sweep import compare_guidance, sweep
from glide_ui.pipelines.text2im import text2im
from glide_ui.pipelines.upscale import upscale
from glide_ui.pipelines.upscale_request import UpscaleRequest
from glide_ui.pipelines.variations import variations

__all__ = [
    "ClipGuidedRequest", "Event", "InpaintRequest", "OutpaintRequest", "Preview", "Progress",
    "Request", "Result", "SketchRequest", "Status", "Text2ImRequest", "UpscaleRequest",
    "VariationsRequest",
    "clip_guided", "compare_guidance", "inpaint", "outpaint", "rank", "rank_result", "ranked",
    "ranked_run", "request_from_recipe", "sketch", "sweep", "text2im", "upscale", "validate",
    "variations",
]
