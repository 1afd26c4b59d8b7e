"""The Inpaint tab: paint a region with the brush, describe it, repaint it with GLIDE."""

from __future__ import annotations

import gradio as gr
import numpy as np
from PIL import Image

from glide_ui.errors import GlideUIError
from glide_ui.images import mask_preview
from glide_ui.pipelines.inpaint import inpaint as run_inpaint
from glide_ui.pipelines.masks import SHAPE_FORMAT, repaint_mask
from glide_ui.pipelines.requests import MAX_MASK_PIXELS, InpaintRequest
from glide_ui.ui import widgets
from glide_ui.ui.backend import ASSETS_DIR, Backend, TabHandles, user_of
from glide_ui.ui.editor import BRUSH_RGBA, mask_editor, upload_guard
from glide_ui.ui.editor_values import editor_background, mask_from_editor
from glide_ui.ui.history import user_messages
from glide_ui.ui.named import named_handler
from glide_ui.ui.settings import handler_defaults, request_fields
from glide_ui.ui.streaming import render, user_errors

TAB_ID = "inpaint"
EXAMPLES = [("chelsea.png", "chelsea-eyes.png", "a cat wearing round black sunglasses"),
            ("coffee.png", "coffee-cup.png", "a cup of green matcha latte with leaf latte art")]
MASK_HINT = "Paint over the part of the picture to repaint; the model's view appears here."
WHOLE_PICTURE = ("**The whole picture is painted:** all of it is replaced, nothing of it is "
                 "kept; the result comes from the prompt alone.")


def example_rows() -> list[list]:
    rows = []
    for background, layer, prompt in EXAMPLES:
        if (ASSETS_DIR / background).exists():
            value = {"background": str(ASSETS_DIR / background),
                     "layers": [str(ASSETS_DIR / "masks" / layer)], "composite": None}
            rows.append([value, prompt])
    return rows


def model_view(mask_editor, mask_grow, mask_invert=False, mask_shape=""):
    """The 64 px picture the base model gets (repainted pixels in red), or a hint."""
    if not isinstance(mask_editor, dict) or mask_editor.get("background") is None:
        # Nothing to show yet; the editor also sends this while a new picture is on its
        # way, so it is a hint rather than "upload an image first".
        return None, MASK_HINT
    try:
        image = editor_background(mask_editor)
        painted = mask_from_editor(mask_editor, image.size)
        if not (painted.any() or mask_invert or (mask_shape or "").strip()):
            return None, MASK_HINT
        region = repaint_mask(painted, (mask_shape or "").strip(), bool(mask_invert),
                              _pixels(mask_grow))
        note = (f"The base model sees this 64 x 64 crop; red pixels are repainted "
                f"({int(region.sum())} pixels repainted at full size).")
        if region.all():
            note = f"{WHOLE_PICTURE} {note}"
        return mask_preview(image, region), note
    except (GlideUIError, gr.Error) as error:
        return None, str(error)


def _pixels(value) -> int:
    try:
        return min(max(int(value), -MAX_MASK_PIXELS), MAX_MASK_PIXELS)
    except (TypeError, ValueError):
        return 0


@user_messages
def invert_painting(mask_editor, mask_grow, mask_invert, mask_shape):
    """The editor with its painted region flipped (painted <-> not), and the model view."""
    image = editor_background(mask_editor)
    flipped = ~mask_from_editor(mask_editor, image.size)
    value = {"background": image, "layers": [brush_layer(flipped)], "composite": None}
    return value, *model_view(value, mask_grow, mask_invert, mask_shape)


def brush_layer(mask: np.ndarray) -> Image.Image:
    """An editor layer painted with the brush's colour where `mask` is True."""
    layer = np.zeros((*mask.shape, 4), dtype=np.uint8)
    layer[mask] = BRUSH_RGBA
    return Image.fromarray(layer, "RGBA")


def build(backend: Backend) -> TabHandles:
    store = backend.store

    @user_errors
    def inpaint(values: dict, request: gr.Request | None):
        mask_editor = values["mask_editor"]
        image = editor_background(mask_editor)
        events = backend.run(run_inpaint, InpaintRequest(
            image=image, mask=mask_from_editor(mask_editor, image.size),
            **request_fields("inpaint", values)))
        first = True
        for preview, progress, gallery, notes in render(events, store, user_of(request)):
            final = isinstance(gallery, list)
            original = image if first or final else gr.skip()  # not re-sent with every step
            result = gallery[0][0] if final and gallery else gr.skip()
            yield preview, progress, gallery, notes, original, result
            first = False

    with gr.Row(equal_height=False):
        with gr.Column(scale=6, min_width=340):
            editor = mask_editor(label="Picture and mask (brush = repaint)", height=460,
                                 canvas_size=(640, 640), elem_id="inpaint-editor")
            upload_guard(editor)
        with gr.Column(scale=5, min_width=320):
            model_mask = gr.Image(label="What the model sees (64 px)", format="png",
                                  interactive=False, height=300, elem_id="inpaint-mask-preview")
            mask_note = gr.Markdown(MASK_HINT, elem_id="inpaint-mask-note")
            with gr.Row(equal_height=True):
                invert = gr.Button("Invert mask", size="sm", elem_id="inpaint-invert")
                mask_invert = gr.Checkbox(False, label="Paint what to keep",
                                          info="The brush marks what stays; the rest is "
                                               "repainted.", elem_id="inpaint-keep")
            mask_shape = gr.Textbox("", label="Mask shapes (pixels)", max_lines=1,
                                    placeholder="rect:40,30,200,120; ellipse:250,60,330,140",
                                    info=f"Added to the painted mask: {SHAPE_FORMAT}.",
                                    elem_id="inpaint-shapes")
    with gr.Row(equal_height=False):
        with gr.Column(scale=6, min_width=340):
            prompt = widgets.prompt_box("what the painted region should show",
                                        label="Prompt for the painted region")
            negative_prompt = widgets.negative_box("inpaint")
            buttons = widgets.run_buttons("Inpaint")
            mask_grow, mask_feather = widgets.mask_sliders(
                "inpaint",                 "Grow mask (px)",
                "Widen the painted region before inpainting; negative shrinks it.")
            guidance_scale, batch_size, seed, sampling = widgets.repaint_settings("inpaint")
            examples = gr.Examples(example_rows(), inputs=[editor, prompt],
                                   label="Example pictures", api_visibility="private")
        with gr.Column(scale=5, min_width=320):
            area = widgets.run_area(preview_height=260)
            actions = widgets.result_actions(area)
    with gr.Row():
        original = gr.Image(label="Original", format="png", interactive=False, height=480,
                            elem_id="inpaint-original")
        result = gr.Image(label="Result (full size)", format="png", interactive=False,
                          height=480, elem_id="inpaint-result")

    mask_inputs = [editor, mask_grow, mask_invert, mask_shape]
    for trigger in (editor.change, mask_grow.release, examples.load_input_event.then,
                    mask_invert.change, mask_shape.submit, mask_shape.blur):
        trigger(model_view, mask_inputs, [model_mask, mask_note], queue=False,
                api_visibility="private", show_progress="hidden", trigger_mode="always_last")
    invert.click(invert_painting, mask_inputs, [editor, model_mask, mask_note],
                 api_visibility="private", show_progress="hidden")  # queued: errors show
    area.gallery.select(_show_picked, area.gallery, result, queue=False,
                        api_visibility="private")

    controls = {"mask_editor": editor, "prompt": prompt, "batch_size": batch_size,
                "seed": seed, "guidance_scale": guidance_scale, "mask_grow": mask_grow,
                "mask_feather": mask_feather, **sampling.by_name(), "mask_invert": mask_invert,
                "mask_shape": mask_shape, "negative_prompt": negative_prompt}
    inpaint, inputs = named_handler(inpaint, controls, handler_defaults("inpaint"))
    outputs = [*area.outputs(), original, result]
    widgets.wire_runs(inpaint, buttons, prompt, inputs, outputs, "inpaint")
    return TabHandles(TAB_ID, area.gallery, actions.send_to_inpaint, actions.selected, controls,
                      area.notes, actions.send_to_upscale)


def _show_picked(gallery, event: gr.SelectData):
    # The file comes from the gallery's value, which Gradio has checked is one of its own
    # files; the event's payload is only trusted for the index.
    return widgets.picked_path(gallery, event.index)
