"""Widgets shared by the tabs: prompt, seed, sampler settings, run buttons and the run area."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr

from glide_ui.errors import RequestError
from glide_ui.pipelines.requests import (
    DIFFUSION_STEPS,
    FAST_PRESET,
    MAX_BATCH_SIZE,
    MAX_SEED,
    SOLVER_LABELS,
    respacing_steps,
)
from glide_ui.settings import SETTINGS
from glide_ui.ui.backend import GPU_QUEUE
from glide_ui.ui.gpu import on_gpu
from glide_ui.ui.streaming import RunArea, idle_progress

UPSAMPLE_STEPS = ["fast27", "10", "27", "50", "100", "250"]
REFERENCE_SAMPLERS = [("Ancestral (as in the paper)", "ancestral"),
                      ("DDIM (deterministic)", "ddim")]
SAMPLERS = REFERENCE_SAMPLERS + [(label, name) for name, label in SOLVER_LABELS.items()]

C = TypeVar("C", bound=gr.components.Component)
T = TypeVar("T")


@dataclass
class SamplerControls:
    """Sampler settings (the "Advanced" fold) in the order handlers take them."""

    sampler: gr.Radio
    steps: gr.Slider
    upsample: gr.Checkbox
    upsample_steps: gr.Dropdown
    upsample_temp: gr.Slider
    base_respacing: gr.Textbox
    upsample_sampler: gr.Radio
    filmstrip: gr.Checkbox

    def inputs(self) -> list[gr.components.Component]:
        return list(self.by_name().values())

    def by_name(self) -> dict[str, gr.components.Component]:
        """The widgets under their handler parameter names, in the handlers' order (also
        for restoring a recipe)."""
        return {"sampler": self.sampler, "steps": self.steps, "upsample": self.upsample,
                "upsample_steps": self.upsample_steps, "upsample_temp": self.upsample_temp,
                "base_respacing": self.base_respacing,
                "upsample_sampler": self.upsample_sampler, "filmstrip": self.filmstrip}


@dataclass
class RunButtons:
    run: gr.Button
    stop: gr.Button


@dataclass
class ResultActions:
    """Buttons under a gallery and the index of the image the user picked (None = first)."""

    send_to_inpaint: gr.Button
    selected: gr.State
    send_to_upscale: gr.Button | None = None


def pipeline_checked(component: C) -> C:
    """Pass the value on as sent: the pipeline checks every number and, unlike Gradio's own
    range check, its message names the field. (A slider cannot go out of range on the page;
    this matters for API clients, who then get the same message as any other front end.)"""
    component.preprocess = lambda payload: payload
    return component


_STEP = {"int": 1, "float": 0.5}


def setting_widget(name: str, job: str, **look: Any) -> gr.components.Component:
    """The widget of setting `name` on `job`'s tab, from its declaration in
    `glide_ui.settings`: label, range, choices, the page's starting value and (as info)
    its help. `look` adds presentation (step, elem_classes...) or overrides one of those.
    Numbers are passed on as sent (see `pipeline_checked`)."""
    setting = SETTINGS[name]
    value = setting.page_defaults.get(job, setting.default_for(job))
    look = {"label": setting.label, "info": setting.help[0].upper() + setting.help[1:] + ".",
            **look}
    if setting.kind == "bool":
        return gr.Checkbox(value, **look)
    if setting.kind == "choice":
        return gr.Radio(list(setting.choices_for(job)), value=value, **look)
    if setting.range is None:
        return gr.Textbox(value, **look)
    look.setdefault("step", _STEP[setting.kind])
    return pipeline_checked(gr.Slider(*setting.range, value=value, **look))


def prompt_box(placeholder: str, label: str = "Prompt") -> gr.Textbox:
    return gr.Textbox(label=label, placeholder=placeholder, lines=2, max_lines=4,
                      elem_classes=["glide-prompt"])


def negative_box(job: str) -> gr.Textbox:
    """The negative prompt: what classifier-free guidance steers away from."""
    return setting_widget("negative_prompt", job, lines=1, max_lines=3,
                          placeholder="empty: the empty caption, as the paper",
                          elem_classes=["glide-negative"])


def seed_box() -> gr.Number:
    """Seed field with a dice button that sets it back to random (-1)."""
    with gr.Row(equal_height=True):
        seed = pipeline_checked(gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED,
                                          label="Seed (-1 = random)", scale=4))
        with gr.Column(scale=1, min_width=100):
            dice = gr.Button("Random", size="sm")
            pick = gr.Button("Fix a seed", size="sm")
    dice.click(lambda: -1, outputs=seed, queue=False, api_visibility="private")
    pick.click(lambda: random.randint(0, MAX_SEED - MAX_BATCH_SIZE), outputs=seed, queue=False,
               api_visibility="private")
    return seed


def sampler_controls(job: str, solvers: bool = True) -> SamplerControls:
    """The "Advanced" sampler widgets of `job`'s tab (the upsampler's sampler as its
    reference notebook, declared in `glide_ui.settings`).
    With `solvers`, the diffusers solvers are offered for the base too, with a one-click
    Fast preset; without (CLIP guidance), a note says why not. The upsampler, never
    CLIP-guided, may use a solver on every tab."""
    if solvers:
        sampler = gr.Radio(SAMPLERS, value="ancestral", label="Sampler",
                           elem_classes=["glide-sampler"],
                           info="DPM-Solver++, UniPC, Euler a and Heun come from diffusers; "
                                "the Fast preset also sets the upsampler's.")
        fast = gr.Button("Fast preset", size="sm", elem_classes=["glide-fast"])
    else:
        sampler = gr.Radio(REFERENCE_SAMPLERS, value="ancestral", label="Sampler",
                           elem_classes=["glide-sampler"],
                           info="CLIP guidance shifts the ancestral mean or the DDIM score; "
                                "the fast solvers cannot take it (they are on the Generate "
                                "and Inpaint tabs).")
        fast = None
    steps = pipeline_checked(gr.Slider(1, DIFFUSION_STEPS,
                                       value=int(SETTINGS["base_respacing"].default_for(job)),
                                       step=1, label=SETTINGS["base_respacing"].label,
                                       info="The reference uses 100; DDIM works with fewer."))
    base_respacing = gr.Textbox(
        "", label="Base respacing", placeholder="empty: Base steps, evenly spaced",
        info="Exact timesteps instead of Base steps: 'ddim25' (DDIM's stride: 0, 40, 80...), "
             "'fast27', or sections such as '10,10,3,2,2'. Moving the slider clears it.")
    with gr.Row():
        upsample = gr.Checkbox(value=True, label="Upsample to 256 px",
                               info="Run GLIDE's diffusion upsampler after the 64 px base.")
        upsample_steps = upsampler_steps(job)
    upsample_temp, upsampler = upsampler_controls(job)
    # One spacing at a time: a count picked on the slider clears the exact spacing, and an
    # exact spacing shows its count on the slider.
    steps.input(None, outputs=base_respacing, js="() => ''", api_visibility="private",
                show_progress="hidden")  # in the page alone: no call to the server
    base_respacing.input(_steps_of, base_respacing, steps, queue=False,
                         api_visibility="private", show_progress="hidden")
    if fast is not None:
        fast.click(lambda: (FAST_PRESET["sampler"], int(FAST_PRESET["base_respacing"]), "",
                            FAST_PRESET["upsample_sampler"], FAST_PRESET["upsample_respacing"]),
                   outputs=[sampler, steps, base_respacing, upsampler, upsample_steps],
                   queue=False, api_visibility="private")
    return SamplerControls(sampler, steps, upsample, upsample_steps, upsample_temp,
                           base_respacing, upsampler, filmstrip_box())


def upsampler_steps(job: str) -> gr.Dropdown:
    return gr.Dropdown(UPSAMPLE_STEPS, value=SETTINGS["upsample_respacing"].default_for(job),
                       label=SETTINGS["upsample_respacing"].label, allow_custom_value=True,
                       info="fast27 as the reference; or a number of steps.")


def upsampler_controls(job: str) -> tuple[gr.Slider, gr.Radio]:
    """The upsampler's temperature and sampler widgets of `job`'s tab."""
    upsample_temp = setting_widget("upsample_temp", job, step=0.001)
    upsampler = gr.Radio(SAMPLERS, value=SETTINGS["upsample_sampler"].default_for(job),
                         label=SETTINGS["upsample_sampler"].label,
                         elem_classes=["glide-upsample-sampler"])
    return upsample_temp, upsampler


def filmstrip_box() -> gr.Checkbox:
    return gr.Checkbox(False, label="Keep a filmstrip",
                       info="An animated WebP and a contact sheet of how each image "
                            "formed, after the results.")


def _steps_of(spec: str):
    try:
        return respacing_steps("Base respacing", spec)[1]
    except RequestError:
        return gr.skip()


def mask_sliders(job: str, grow_label: str, grow_info: str) -> tuple[gr.Slider, gr.Slider]:
    """The grow (negative: shrink) and feather sliders (pixels) of a tab that repaints a
    region."""
    with gr.Row():
        grow = setting_widget("mask_grow", job, label=grow_label, info=grow_info)
        feather = setting_widget("mask_feather", job, label="Feather (px)",
                                 info="Soft edge when pasting back into the picture.")
    return grow, feather


def repaint_settings(job: str) -> tuple[gr.Slider, gr.Slider, gr.Number, SamplerControls]:
    """Guidance scale, batch size, seed and the "Advanced" fold of `job`'s tab, which
    repaints a region with the inpainting models."""
    guidance_scale = setting_widget("guidance_scale", job)
    batch_size = setting_widget("batch_size", job)
    seed = seed_box()
    with gr.Accordion("Advanced", open=False):
        sampling = sampler_controls(job)
    return guidance_scale, batch_size, seed, sampling


def run_buttons(label: str) -> RunButtons:
    with gr.Row():
        run = gr.Button(label, variant="primary", scale=3, elem_classes=["glide-run"])
        stop = gr.Button("Stop", variant="stop", scale=1, elem_classes=["glide-stop"])
    return RunButtons(run, stop)


def wire_runs(handler: Callable, buttons: RunButtons, prompt: gr.Textbox,
              inputs: list, outputs: list, api_name: str) -> list:
    """Run `handler` from the button (the HTTP endpoint `api_name`) and from Enter in the
    prompt, one run at a time across the tabs (the model worker); Stop cancels either."""
    runs = [buttons.run.click(on_gpu(handler), inputs, outputs, api_name=api_name,
                              concurrency_id=GPU_QUEUE, show_progress="hidden"),
            prompt.submit(on_gpu(handler), inputs, outputs, api_visibility="private",
                          concurrency_id=GPU_QUEUE, show_progress="hidden")]
    buttons.stop.click(None, cancels=runs)
    return runs


def run_area(gallery_label: str = "Results", preview_height: int = 300) -> RunArea:
    progress = gr.HTML(idle_progress(), label="Progress", elem_classes=["glide-progress-box"])
    preview = gr.Image(label="Live preview", format="png", interactive=False,
                       height=preview_height, buttons=["download", "fullscreen"],
                       elem_classes=["glide-preview"])
    gallery = gr.Gallery(label=gallery_label, format="png", columns=4, fit_columns=False,
                         height="auto", object_fit="contain", interactive=False,
                         buttons=["download", "download_all", "fullscreen"],
                         elem_classes=["glide-gallery"])
    notes = gr.Markdown(label="Notes", elem_classes=["glide-notes"])
    return RunArea(preview, progress, gallery, notes)


def example_prompts(prompt: gr.Textbox, examples: list[str]) -> gr.Examples:
    return gr.Examples([[text] for text in examples], inputs=prompt, label="Example prompts",
                       api_visibility="private")


def results_column(extra: Callable[[], T] | None = None
                   ) -> tuple[RunArea, ResultActions, gr.Button, T | None]:
    """The right-hand column of a text tab: the run area, then "send to inpaint" and a
    "rank with CLIP" button under the gallery, then what `extra()` builds (and returns)."""
    with gr.Column(scale=6, min_width=320):
        area = run_area()
        with gr.Row():
            actions = result_actions(area)
            rank_button = gr.Button("Rank these with CLIP", size="sm")
        built = extra() if extra is not None else None
    return area, actions, rank_button, built


def result_actions(area: RunArea, upscale: bool = True) -> ResultActions:
    """"Send to inpaint" and (with `upscale`) "Upscale" buttons for the picked gallery
    image."""
    selected = gr.State(None)
    send = gr.Button("Send picked image to Inpaint", size="sm")
    enlarge = gr.Button("Upscale picked image", size="sm",
                        elem_classes=["glide-upscale-action"]) if upscale else None
    area.gallery.select(_picked, outputs=selected, queue=False, api_visibility="private")
    area.gallery.change(lambda: None, outputs=selected, queue=False, api_visibility="private")
    return ResultActions(send, selected, enlarge)


def _picked(event: gr.SelectData) -> int:
    return event.index


def picked_path(gallery: list | None, index: int | None) -> str:
    """The file of the picked gallery item (the first when none is picked)."""
    if not gallery:
        raise gr.Error("There is no result yet: generate an image first.")
    if index is None or not 0 <= index < len(gallery):
        index = 0
    item = gallery[index]
    return item[0] if isinstance(item, (tuple, list)) else item

