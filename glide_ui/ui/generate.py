"""The Generate tab: text to image with classifier-free guidance, ranking and sweeps."""

from __future__ import annotations

import gradio as gr

from glide_ui.images import load_image, read_recipe
from glide_ui.pipelines.rank import ranked_run
from glide_ui.pipelines.requests import MAX_BATCH_SIZE, Text2ImRequest
from glide_ui.pipelines.sweep import MAX_SWEEP_VALUES
from glide_ui.pipelines.sweep import sweep as run_sweep
from glide_ui.pipelines.text2im import text2im, upsample_picked
from glide_ui.ui import widgets
from glide_ui.ui.backend import GPU_QUEUE, Backend, TabHandles, user_of
from glide_ui.ui.gpu import on_gpu
from glide_ui.ui.named import named_handler
from glide_ui.ui.ranking import rank_handler
from glide_ui.ui.settings import handler_defaults, request_fields
from glide_ui.ui.streaming import render, user_errors

TAB_ID = "generate"
EXAMPLES = [
    "an oil painting of a corgi",
    "a crayon drawing of a space elevator",
    "a stained glass window of a red fox",
    "a surrealist dream-like oil painting by salvador dali of a cat playing checkers",
]


SWEEP_PARAMS = [("Guidance scale", "guidance_scale"),
                ("Upsample temperature", "upsample_temp")]


def parse_values(text: str) -> list[float]:
    """"1, 3, 5.5" -> [1.0, 3.0, 5.5]; a clear message for anything else."""
    try:
        values = [float(part) for part in str(text).replace(";", ",").split(",")
                  if part.strip()]
    except ValueError:
        raise gr.Error("Sweep values must be numbers separated by commas, "
                       "e.g. 1, 3, 5, 8.") from None
    if not 1 <= len(values) <= MAX_SWEEP_VALUES:
        raise gr.Error(f"Give 1 to {MAX_SWEEP_VALUES} values to sweep, e.g. 1, 3, 5, 8.")
    return values


def picked_results(gallery: list | None, numbers: list | None, selected: int | None) -> list:
    """(image, recipe) of the gallery images numbered in `numbers` (1-based), else of the
    one clicked in the gallery (`selected`), else of the first."""
    if not gallery:
        raise gr.Error("There is no result yet: generate with 'Upsample to 256 px' off first.")
    indices = sorted({int(n) - 1 for n in numbers or []}) or [selected or 0]
    if any(not 0 <= i < len(gallery) for i in indices):
        raise gr.Error(f"The gallery holds {len(gallery)} image(s); pick from 1 to "
                       f"{len(gallery)}.")
    picks = []
    for i in indices:
        path = widgets.picked_path(gallery, i)
        recipe = read_recipe(path)
        if recipe is None:
            raise gr.Error(f"Image {i + 1} carries no recipe: it cannot be upsampled later.")
        picks.append((load_image(path), recipe))
    return picks


def pick_controls() -> tuple[gr.Dropdown, gr.Button]:
    with gr.Row(equal_height=True):
        numbers = gr.Dropdown([str(n) for n in range(1, MAX_BATCH_SIZE + 1)],
                              multiselect=True, label="Pick, then upsample",
                              info="With 'Upsample to 256 px' off, the 64 px base images come "
                                   "first; pick their numbers (or click one) to upsample only "
                                   "those.", scale=3, elem_classes=["glide-pick"])
        button = gr.Button("Upsample picked", scale=1)
    return numbers, button


def build(backend: Backend) -> TabHandles:
    store = backend.store

    def text2im_request(values: dict) -> Text2ImRequest:
        return Text2ImRequest(**request_fields("text2im", values))

    @user_errors
    def generate(values: dict, request: gr.Request | None):
        job = text2im_request(values)
        events = backend.run(ranked_run, text2im, job, values["prompt"]) \
            if values["rank_with_clip"] else backend.run(text2im, job)
        yield from render(events, store, user_of(request))

    @user_errors
    def sweep(values: dict, request: gr.Request | None):
        base = text2im_request({**values, "batch_size": 1})
        yield from render(backend.run(run_sweep, base, param=values["sweep_param"],
                                      values=parse_values(values["sweep_values"])), store,
                          user_of(request))

    @user_errors
    def upsample_later(gallery, numbers, selected, request: gr.Request = None):
        picks = picked_results(gallery, numbers, selected)
        yield from render(backend.run(upsample_picked, picks), store, user_of(request))

    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            prompt = widgets.prompt_box("an oil painting of a corgi")
            negative_prompt = widgets.negative_box("text2im")
            buttons = widgets.run_buttons("Generate")
            batch_size = widgets.setting_widget("batch_size", "text2im")
            guidance_scale = widgets.setting_widget("guidance_scale", "text2im")
            seed = widgets.seed_box()
            with gr.Accordion("Advanced", open=False):
                sampling = widgets.sampler_controls("text2im")
                rank_with_clip = gr.Checkbox(False, label="Rank the batch with CLIP",
                                             info="Best match to the prompt first.")
            with gr.Accordion("Sweep (guidance-scale grid)", open=False):
                sweep_param = gr.Radio(SWEEP_PARAMS, value="guidance_scale", label="Vary")
                sweep_values = gr.Textbox("1, 3, 5, 8", label="Values",
                                          info="One image per value, all from the same seed "
                                               "and noise, shown as a labelled grid.")
                sweep_button = gr.Button("Run sweep")
            widgets.example_prompts(prompt, EXAMPLES)
        area, actions, rank_button, (pick_numbers, upsample_button) = \
            widgets.results_column(pick_controls)

    settings = {"batch_size": batch_size, "seed": seed, "guidance_scale": guidance_scale,
                **sampling.by_name()}
    defaults = handler_defaults("text2im")
    generate, gen_inputs = named_handler(generate, {
        "prompt": prompt, **settings, "rank_with_clip": rank_with_clip,
        "negative_prompt": negative_prompt}, defaults)
    sweep, sweep_inputs = named_handler(sweep, {
        "prompt": prompt, "sweep_param": sweep_param, "sweep_values": sweep_values,
        **{name: widget for name, widget in settings.items() if name != "batch_size"},
        "negative_prompt": negative_prompt}, defaults)
    runs = [
        buttons.run.click(on_gpu(generate), gen_inputs, area.outputs(), api_name="generate",
                          concurrency_id=GPU_QUEUE, show_progress="hidden"),
        prompt.submit(on_gpu(generate), gen_inputs, area.outputs(),
                      api_visibility="private", concurrency_id=GPU_QUEUE,
                      show_progress="hidden"),
        sweep_button.click(on_gpu(sweep), sweep_inputs, area.outputs(), api_name="sweep",
                           concurrency_id=GPU_QUEUE, show_progress="hidden"),
        upsample_button.click(on_gpu(upsample_later),
                              [area.gallery, pick_numbers, actions.selected], area.outputs(),
                              api_name="upsample_picked", concurrency_id=GPU_QUEUE,
                              show_progress="hidden"),
        rank_button.click(on_gpu(rank_handler(backend)), [area.gallery, prompt],
                          area.gallery, api_name="rank", concurrency_id=GPU_QUEUE),
    ]
    buttons.stop.click(None, cancels=runs)
    controls = {"prompt": prompt, **settings, "negative_prompt": negative_prompt}
    return TabHandles(TAB_ID, area.gallery, actions.send_to_inpaint, actions.selected, controls,
                      area.notes, actions.send_to_upscale)
