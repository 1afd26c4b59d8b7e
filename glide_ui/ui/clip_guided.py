"""The CLIP-guided tab: GLIDE's noise-aware CLIP or OpenAI CLIP steering the base model."""

from __future__ import annotations

import gradio as gr

from glide_ui.checkpoints import OPENAI_CLIP_NAMES
from glide_ui.pipelines.clip_guided import clip_guided as run_clip_guided
from glide_ui.pipelines.requests import (
    ClipGuidedRequest,
    Text2ImRequest,
)
from glide_ui.pipelines.sweep import compare_guidance
from glide_ui.ui import widgets
from glide_ui.ui.backend import GPU_QUEUE, Backend, TabHandles, user_of
from glide_ui.ui.gpu import on_gpu
from glide_ui.ui.named import named_handler
from glide_ui.ui.ranking import rank_handler
from glide_ui.ui.settings import handler_defaults, request_fields
from glide_ui.ui.streaming import render, user_errors

TAB_ID = "clip_guided"
SOURCES = [("GLIDE noise-aware CLIP (as in the paper)", "glide"),
           ("OpenAI CLIP (on the predicted image)", "openai")]
EXAMPLES = ["a hedgehog using a calculator", "a boat in the canyon", "a red cube on a table"]


def build(backend: Backend) -> TabHandles:
    store = backend.store

    @user_errors
    def clip_guided(values: dict, request: gr.Request | None):
        if values["compare_with_cfg"]:
            cfg_request = Text2ImRequest(**request_fields(
                "text2im", {**values, "guidance_scale": values["cfg_scale"]}))
            events = backend.run(compare_guidance, cfg_request,
                                 clip_scale=values["guidance_scale"],
                                 clip_source=values["clip_source"],
                                 openai_clip_model=values["openai_clip_model"])
        else:
            events = backend.run(run_clip_guided, ClipGuidedRequest(
                **request_fields("clip_guided", values)))
        yield from render(events, store, user_of(request))

    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            prompt = widgets.prompt_box("a hedgehog using a calculator")
            buttons = widgets.run_buttons("Generate with CLIP guidance")
            clip_source = gr.Radio(SOURCES, value="glide", label="Guidance source")
            guidance_scale = widgets.setting_widget(
                "clip_scale", "clip_guided", info="Strength of the CLIP gradient pushing each "
                "step towards the prompt.")
            batch_size = widgets.setting_widget("batch_size", "clip_guided")
            seed = widgets.seed_box()
            with gr.Accordion("Compare with classifier-free guidance", open=False):
                compare_with_cfg = gr.Checkbox(
                    False, label="Compare side by side",
                    info="Runs CLIP guidance and classifier-free guidance from the same seed "
                         "and shows both.")
                cfg_scale = widgets.setting_widget(
                    "guidance_scale", "text2im", label="Classifier-free guidance scale",
                    info="Used by the comparison image only.")
            with gr.Accordion("Advanced", open=False):
                sampling = widgets.sampler_controls("clip_guided", solvers=False)
                openai_clip_model = gr.Dropdown(
                    list(OPENAI_CLIP_NAMES), value=ClipGuidedRequest.openai_clip_model,
                    label="OpenAI CLIP model",
                    info="The CLIP that guides when the source is OpenAI CLIP.")
            widgets.example_prompts(prompt, EXAMPLES)
        area, actions, rank_button, _ = widgets.results_column()

    controls = {"prompt": prompt, "batch_size": batch_size, "seed": seed,
                "guidance_scale": guidance_scale, "clip_source": clip_source}
    clip_guided, inputs = named_handler(clip_guided, {
        **controls, "compare_with_cfg": compare_with_cfg, "cfg_scale": cfg_scale,
        **sampling.by_name(), "openai_clip_model": openai_clip_model},
        handler_defaults("clip_guided"))
    runs = [
        buttons.run.click(on_gpu(clip_guided), inputs, area.outputs(), api_name="clip_guided",
                          concurrency_id=GPU_QUEUE, show_progress="hidden"),
        prompt.submit(on_gpu(clip_guided), inputs, area.outputs(), api_visibility="private",
                      concurrency_id=GPU_QUEUE, show_progress="hidden"),
        rank_button.click(on_gpu(rank_handler(backend)), [area.gallery, prompt], area.gallery,
                          api_visibility="private", concurrency_id=GPU_QUEUE),
    ]
    buttons.stop.click(None, cancels=runs)
    controls.update(openai_clip_model=openai_clip_model, **sampling.by_name())
    return TabHandles(TAB_ID, area.gallery, actions.send_to_inpaint, actions.selected, controls,
                      area.notes, actions.send_to_upscale)
