"""The Sketch tab: paint coloured strokes on a picture, describe the result, choose a
strength; the strokes' region is repainted from them (text-conditional SDEdit)."""

from __future__ import annotations

import gradio as gr

from glide_ui.errors import GlideUIError
from glide_ui.images import paint_strokes
from glide_ui.pipelines.inpaint import input_record
from glide_ui.pipelines.requests import SketchRequest
from glide_ui.pipelines.sketch import sketch as run_sketch
from glide_ui.ui import widgets
from glide_ui.ui.backend import Backend, TabHandles, user_of
from glide_ui.ui.editor import checked, upload_guard
from glide_ui.ui.editor_values import editor_background, editor_strokes
from glide_ui.ui.named import named_handler
from glide_ui.ui.settings import handler_defaults, request_fields
from glide_ui.ui.streaming import render, user_errors

TAB_ID = "sketch"
PALETTE = ["#1c7ed6", "#74c0fc", "#2f9e44", "#94d82d", "#f59f00", "#e03131", "#9c36b5",
           "#8d5524", "#f8f9fa", "#212529"]
BRUSH = gr.Brush(colors=PALETTE, default_color=PALETTE[0], color_mode="defaults")


def sketch_editor(**kwargs) -> gr.ImageEditor:
    """An image editor with a colour brush and palette, its uploads checked."""
    options = dict(brush=BRUSH, eraser=gr.Eraser(), layers=False, transforms=(),
                   sources=("upload", "clipboard"), type="pil", format="png")
    return checked(gr.ImageEditor(**{**options, **kwargs}))


def editor_inputs(sketch_editor: dict | None) -> dict[str, str] | None:
    """The fingerprints (as a sketch recipe records them) of the picture with its strokes
    and of their region, or None when the editor holds no readable picture."""
    try:
        return input_record(*paint_strokes(editor_background(sketch_editor),
                                                   editor_strokes(sketch_editor)))
    except GlideUIError:
        return None


def strength_slider(job: str, info: str) -> gr.Slider:
    return widgets.setting_widget("strength", job, step=0.05, info=info)


def build(backend: Backend) -> TabHandles:
    store = backend.store

    @user_errors
    def sketch(values: dict, request: gr.Request | None):
        sketch_editor = values["sketch_editor"]
        events = backend.run(run_sketch, SketchRequest(
            image=editor_background(sketch_editor, "sketch on"),
            strokes=editor_strokes(sketch_editor),
            **request_fields("sketch", values)))
        for preview, progress, gallery, notes in render(events, store, user_of(request)):
            final = isinstance(gallery, list) and gallery
            yield preview, progress, gallery, notes, gallery[0][0] if final else gr.skip()

    with gr.Row(equal_height=False):
        with gr.Column(scale=6, min_width=340):
            editor = sketch_editor(label="Picture and strokes (pick a colour, paint)",
                                   height=460, canvas_size=(640, 640),
                                   elem_id="sketch-editor")
            upload_guard(editor)
            prompt = widgets.prompt_box("what the painted strokes should become",
                                        label="Prompt for the sketch")
            negative_prompt = widgets.negative_box("sketch")
            buttons = widgets.run_buttons("Edit from sketch")
            strength = strength_slider("sketch", "How far from the strokes: 0 keeps them as "
                                            "painted, 1 ignores their colours (inpainting).")
            mask_grow, mask_feather = widgets.mask_sliders(
                "sketch",                 "Grow region (px)",
                "Also repaint this far around the strokes; negative shrinks the region.")
            guidance_scale, batch_size, seed, sampling = widgets.repaint_settings("sketch")
        with gr.Column(scale=5, min_width=320):
            area = widgets.run_area(preview_height=260)
            actions = widgets.result_actions(area)
            result = gr.Image(label="Result (full size)", format="png", interactive=False,
                              height=420, elem_id="sketch-result")

    controls = {"sketch_editor": editor, "prompt": prompt, "strength": strength,
                "batch_size": batch_size, "seed": seed, "guidance_scale": guidance_scale,
                "mask_grow": mask_grow, "mask_feather": mask_feather, **sampling.by_name(),
                "negative_prompt": negative_prompt}
    sketch, inputs = named_handler(sketch, controls, handler_defaults("sketch"))
    widgets.wire_runs(sketch, buttons, prompt, inputs, [*area.outputs(), result], "sketch")
    return TabHandles(TAB_ID, area.gallery, actions.send_to_inpaint, actions.selected, controls,
                      area.notes, actions.send_to_upscale)
