"""The Variations tab: new pictures that keep a picture's composition (SDEdit with the
base model at 64 px, then the upsampler)."""

from __future__ import annotations

import gradio as gr

from glide_ui.images import load_image
from glide_ui.pipelines.requests import VariationsRequest
from glide_ui.pipelines.variations import variations as run_variations
from glide_ui.ui import widgets
from glide_ui.ui.backend import Backend, TabHandles, user_of
from glide_ui.ui.editor import picture_input
from glide_ui.ui.named import named_handler
from glide_ui.ui.settings import handler_defaults, request_fields
from glide_ui.ui.sketch import strength_slider
from glide_ui.ui.streaming import render, user_errors

TAB_ID = "variations"


def build(backend: Backend) -> TabHandles:
    store = backend.store

    @user_errors
    def variations(values: dict, request: gr.Request | None):
        picture = values["picture"]
        if picture is not None and not backend.shares_files:  # a replica elsewhere
            picture = load_image(picture)
        events = backend.run(run_variations, VariationsRequest(
            image=picture, **request_fields("variations", values)))
        yield from render(events, store, user_of(request))

    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            picture = picture_input(label="Picture", format="png", height=320,
                                    elem_id="variations-picture")
            prompt = widgets.prompt_box("what the variations should show")
            negative_prompt = widgets.negative_box("variations")
            buttons = widgets.run_buttons("Make variations")
            strength = strength_slider("variations", "How far from the picture: 0 keeps its 64 px "
                                            "version, 1 ignores it (text to image).")
            guidance_scale = widgets.setting_widget("guidance_scale", "variations")
            batch_size = widgets.setting_widget("batch_size", "variations")
            seed = widgets.seed_box()
            with gr.Accordion("Advanced", open=False):
                sampling = widgets.sampler_controls("variations")
        with gr.Column(scale=6, min_width=320):
            area = widgets.run_area()
            actions = widgets.result_actions(area)

    controls = {"picture": picture, "prompt": prompt, "strength": strength,
                "batch_size": batch_size, "seed": seed, "guidance_scale": guidance_scale,
                **sampling.by_name(), "negative_prompt": negative_prompt}
    variations, inputs = named_handler(variations, controls, handler_defaults("variations"))
    widgets.wire_runs(variations, buttons, prompt, inputs, area.outputs(), "variations")
    return TabHandles(TAB_ID, area.gallery, actions.send_to_inpaint, actions.selected, controls,
                      area.notes, actions.send_to_upscale)
