"""The Upscale tab: a picture (a result sent here, or an upload up to 256 px a side) made 4
or 2 times larger by GLIDE's inpainting upsampler in overlapping windows."""

from __future__ import annotations

import gradio as gr

from glide_ui.errors import GlideUIError
from glide_ui.images import load_image, read_recipe
from glide_ui.pipelines.requests import FAST_PRESET, respacing_steps, validate
from glide_ui.pipelines.upscale import plan_upscale
from glide_ui.pipelines.upscale import upscale as run_upscale
from glide_ui.pipelines.upscale_request import UpscaleRequest
from glide_ui.settings import MAX_UPSCALE_SIDE
from glide_ui.ui import widgets
from glide_ui.ui.backend import Backend, TabHandles, user_of
from glide_ui.ui.editor import picture_input
from glide_ui.ui.named import named_handler
from glide_ui.ui.settings import handler_defaults, request_fields
from glide_ui.ui.streaming import render, user_errors

TAB_ID = "upscale"
PLAN_HINT = (f"Upload a picture of up to {MAX_UPSCALE_SIDE} x {MAX_UPSCALE_SIDE} pixels, or "
             "press *Upscale picked image* under any result.")


def plan_note(picture, scale, overlap, upsample_steps) -> str:
    """What the run will make: the sizes, the windows and the model steps it costs."""
    if not picture:
        return PLAN_HINT
    try:
        request, _ = validate(UpscaleRequest(image=picture, prompt="-", scale=scale,
                                             overlap=overlap,
                                             upsample_respacing=str(upsample_steps)))
        steps = respacing_steps("Upsampler steps", request.upsample_respacing)[1]
    except GlideUIError as error:
        return str(error)
    plan = plan_upscale(request.image.size, request.scale, request.overlap)
    (width, height), count = plan.canvas, len(plan.windows)
    return (f"{request.image.width} x {request.image.height} → **{width} x {height}** pixels: "
            f"{count} window(s) of 256 px × {steps} steps = {count * steps} upsampler steps "
            "per image, row by row.")


def sent_picture(path: str) -> tuple[str, str]:
    """(the picture, its recipe's prompt or "") for a result sent here."""
    try:
        recipe = read_recipe(path)
    except GlideUIError:
        recipe = None
    return path, recipe.prompt if recipe else ""


def build(backend: Backend) -> TabHandles:
    store = backend.store

    @user_errors
    def upscale(values: dict, request: gr.Request | None):
        picture = values["picture"]
        if picture is not None and not backend.shares_files:  # a replica elsewhere
            picture = load_image(picture)
        events = backend.run(run_upscale, UpscaleRequest(
            image=picture, **request_fields("upscale", values)))
        yield from render(events, store, user_of(request))

    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            picture = picture_input(label="Picture", format="png", height=320,
                                    elem_id="upscale-picture")
            note = gr.Markdown(PLAN_HINT, elem_id="upscale-plan-note")
            prompt = widgets.prompt_box("empty: the picture's own prompt, from its recipe")
            buttons = widgets.run_buttons("Upscale")
            with gr.Row():
                scale = widgets.setting_widget("scale", "upscale", step=2)
                overlap = widgets.setting_widget("overlap", "upscale", step=4)
            batch_size = widgets.setting_widget("batch_size", "upscale")
            seed = widgets.seed_box()
            with gr.Accordion("Advanced", open=False):
                fast = gr.Button("Fast preset", size="sm", elem_classes=["glide-fast"])
                upsample_steps = widgets.upsampler_steps("upscale")
                upsample_temp, upsample_sampler = widgets.upsampler_controls("upscale")
                filmstrip = widgets.filmstrip_box()
        with gr.Column(scale=6, min_width=320):
            area = widgets.run_area(preview_height=420)
            actions = widgets.result_actions(area, upscale=False)

    fast.click(lambda: (FAST_PRESET["upsample_sampler"], FAST_PRESET["upsample_respacing"]),
               outputs=[upsample_sampler, upsample_steps], queue=False,
               api_visibility="private")
    plan_inputs = [picture, scale, overlap, upsample_steps]
    for widget in plan_inputs:
        widget.change(plan_note, plan_inputs, note, queue=False, api_visibility="private",
                      show_progress="hidden", trigger_mode="always_last")
    controls = {"picture": picture, "prompt": prompt, "scale": scale, "overlap": overlap,
                "batch_size": batch_size, "seed": seed, "upsample_steps": upsample_steps,
                "upsample_temp": upsample_temp, "upsample_sampler": upsample_sampler,
                "filmstrip": filmstrip}
    upscale, inputs = named_handler(upscale, controls, handler_defaults("upscale"))
    widgets.wire_runs(upscale, buttons, prompt, inputs, area.outputs(), "upscale")
    return TabHandles(TAB_ID, area.gallery, actions.send_to_inpaint, actions.selected, controls,
                      area.notes)
