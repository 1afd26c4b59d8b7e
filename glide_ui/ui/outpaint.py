"""The Outpaint tab: extend a picture on its sides, the new area made by GLIDE's inpainting
models window by window."""

from __future__ import annotations

import gradio as gr
from PIL import Image, ImageDraw

from glide_ui.errors import GlideUIError
from glide_ui.images import load_image
from glide_ui.pipelines.outpaint import FILL, layout
from glide_ui.pipelines.outpaint import outpaint as run_outpaint
from glide_ui.pipelines.requests import (
    SIDES,
    OutpaintRequest,
    validate,
)
from glide_ui.ui import widgets
from glide_ui.ui.backend import ASSETS_DIR, Backend, TabHandles, user_of
from glide_ui.ui.editor import picture_input
from glide_ui.ui.named import named_handler
from glide_ui.ui.settings import handler_defaults, request_fields
from glide_ui.ui.streaming import render, user_errors

TAB_ID = "outpaint"
ASPECTS = [("Pixels per side", ""), "1:1", "4:3", "3:2", "16:9", "2:1", "3:4", "2:3", "9:16"]
EXAMPLES = [("chelsea.png", "a cat sitting on a sofa in a sunny living room", 128)]
PLAN_HINT = "Upload a picture and choose how far to extend it; the plan appears here."
PLAN_DISPLAY = 320  # px: the longer side of the plan picture


def example_rows() -> list[list]:
    return [[str(ASSETS_DIR / name), prompt, 0, 0, right, 0, ""]
            for name, prompt, right in EXAMPLES if (ASSETS_DIR / name).exists()]


def plan_view(image, left, top, right, bottom, aspect_ratio, blend):
    """The extended canvas, scaled down: the picture, the new area in grey and each window
    outlined (numbered in the order they run), with a line saying what will be made."""
    if not image:
        return None, PLAN_HINT
    try:
        request, _ = validate(OutpaintRequest(
            image=image, **request_fields("outpaint", {
                "left": left, "top": top, "right": right, "bottom": bottom,
                "aspect_ratio": aspect_ratio, "blend": blend})))
    except GlideUIError as error:
        return None, str(error)
    sides = [getattr(request, side) for side in SIDES]
    plan = layout(request.image.size, *sides, request.blend)
    scale = PLAN_DISPLAY / max(plan.canvas)
    canvas = Image.new("RGB", plan.canvas, FILL)
    canvas.paste(request.image, plan.picture[:2])
    canvas = canvas.resize((max(round(plan.canvas[0] * scale), 1),
                            max(round(plan.canvas[1] * scale), 1)))
    draw = ImageDraw.Draw(canvas)
    for number, box in enumerate(plan.windows, 1):
        x0, y0, x1, y1 = (round(value * scale) for value in box)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 200, 0))
        draw.text((x0 + 3, y0 + 2), str(number), fill=(255, 200, 0))
    width, height = plan.canvas
    note = (f"{request.image.width} x {request.image.height} → **{width} x {height}** "
            f"pixels (left {sides[0]}, top {sides[1]}, right {sides[2]}, bottom {sides[3]}); "
            f"{len(plan.windows)} window(s) of up to 256 px, run in the numbered order.")
    return canvas, note


def build(backend: Backend) -> TabHandles:
    store = backend.store

    @user_errors
    def outpaint(values: dict, request: gr.Request | None):
        image = values["image"]
        # The pixels travel, not the path: a replica may run on another machine.
        events = backend.run(run_outpaint, OutpaintRequest(
            image=load_image(image) if image else None,
            **request_fields("outpaint", values)))
        for preview, progress, gallery, notes in render(events, store, user_of(request)):
            result = gallery[0][0] if isinstance(gallery, list) and gallery else gr.skip()
            yield preview, progress, gallery, notes, result

    with gr.Row(equal_height=False):
        with gr.Column(scale=6, min_width=340):
            image = picture_input(label="Picture", height=360, elem_id="outpaint-image")
        with gr.Column(scale=5, min_width=320):
            plan = gr.Image(label="What will be made (windows in order)", format="png",
                            interactive=False, height=300, elem_id="outpaint-plan")
            plan_note = gr.Markdown(PLAN_HINT, elem_id="outpaint-plan-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=6, min_width=340):
            prompt = widgets.prompt_box("what the whole extended picture shows",
                                        label="Prompt for the extended picture")
            negative_prompt = widgets.negative_box("outpaint")
            buttons = widgets.run_buttons("Outpaint")
            by_side = {}
            for pair in (("left", "right"), ("top", "bottom")):
                with gr.Row():
                    for side in pair:
                        by_side[side] = widgets.setting_widget(
                            side, "outpaint", label=f"{side.capitalize()} (px)")
            sides = [by_side[side] for side in SIDES]
            with gr.Row():
                aspect_ratio = gr.Dropdown(ASPECTS, value="", label="Or extend to",
                                           allow_custom_value=True,
                                           info="An aspect ratio (instead of the sides): the "
                                                "short way, half on each side.")
                blend = widgets.setting_widget(
                    "blend", "outpaint", info="Pixels of the picture next to the new area "
                    "that are blended in; the rest stay exact.")
            guidance_scale, batch_size, seed, sampling = widgets.repaint_settings("outpaint")
            examples = gr.Examples(example_rows(),
                                   inputs=[image, prompt, *sides, aspect_ratio],
                                   label="Example pictures", api_visibility="private")
        with gr.Column(scale=5, min_width=320):
            area = widgets.run_area(preview_height=260)
            actions = widgets.result_actions(area)
    result = gr.Image(label="Result (full size)", format="png", interactive=False,
                      height=480, elem_id="outpaint-result")

    # One way at a time: an aspect ratio sets the sides to 0, a side clears the ratio.
    aspect_ratio.input(lambda: [0] * len(SIDES), outputs=sides, queue=False,
                       api_visibility="private", show_progress="hidden")
    for side in sides:
        side.input(lambda: "", outputs=aspect_ratio, queue=False, api_visibility="private",
                   show_progress="hidden")
    plan_inputs = [image, *sides, aspect_ratio, blend]
    for trigger in (image.change, aspect_ratio.change, blend.change,
                    examples.load_input_event.then, *(side.change for side in sides)):
        trigger(plan_view, plan_inputs, [plan, plan_note], queue=False,
                api_visibility="private", show_progress="hidden", trigger_mode="always_last")

    controls = {"image": image, "prompt": prompt, **dict(zip(SIDES, sides, strict=True)),
                "aspect_ratio": aspect_ratio, "blend": blend, "batch_size": batch_size,
                "seed": seed, "guidance_scale": guidance_scale, **sampling.by_name(),
                "negative_prompt": negative_prompt}
    outpaint, inputs = named_handler(outpaint, controls, handler_defaults("outpaint"))
    outputs = [*area.outputs(), result]
    widgets.wire_runs(outpaint, buttons, prompt, inputs, outputs, "outpaint")
    return TabHandles(TAB_ID, area.gallery, actions.send_to_inpaint, actions.selected, controls,
                      area.notes, actions.send_to_upscale)
