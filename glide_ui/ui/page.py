"""The whole page: banner, the job tabs, History, PNG info, Train, Models, and the wiring
between them."""

from __future__ import annotations

import gradio as gr

from glide_ui.openai_clip import clip_code_missing
from glide_ui.ui import (
    clip_guided,
    generate,
    history,
    inpaint,
    models_panel,
    outpaint,
    png_info,
    sketch,
    train,
    upscale,
    variations,
)
from glide_ui.ui.backend import Backend, TabHandles
from glide_ui.ui.editor import editor_value
from glide_ui.ui.history import HistoryHandles, user_messages
from glide_ui.ui.widgets import picked_path

INTRO = (
    "# GLIDE\n"
    "OpenAI's GLIDE text-to-image diffusion models, with the official weights: "
    "**Generate** from a prompt, steer with **CLIP**, **Inpaint** a region you paint, "
    "**Outpaint** a picture beyond its edges, edit from coloured strokes (**Sketch**), "
    "make **Variations** of a picture, **Upscale** it to 1024 px, or **Train** a fine-tune "
    "on your own pictures. "
    "Previews stream while the model denoises; every PNG carries its recipe, and "
    "**History** keeps what you make."
)


def build_demo(backend: Backend) -> gr.Blocks:
    with gr.Blocks(title="GLIDE", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        notice = models_panel.banner(backend.manager)
        if notice:
            gr.Markdown(notice, elem_classes=["glide-banner"], elem_id="tiny-banner")
        missing = clip_code_missing()
        if missing:  # e.g. a Space or a `pip install glide-ui` without clip-anytorch
            gr.Markdown(f"⚠️ {missing}", elem_classes=["glide-banner"],
                        elem_id="clip-missing-banner")
        with gr.Tabs() as tabs:
            with gr.Tab("Generate", id=generate.TAB_ID):
                handles = [generate.build(backend)]
            with gr.Tab("CLIP-guided", id=clip_guided.TAB_ID):
                handles.append(clip_guided.build(backend))
            with gr.Tab("Inpaint", id=inpaint.TAB_ID):
                handles.append(inpaint.build(backend))
            with gr.Tab("Outpaint", id=outpaint.TAB_ID):
                handles.append(outpaint.build(backend))
            with gr.Tab("Sketch", id=sketch.TAB_ID):
                handles.append(sketch.build(backend))
            with gr.Tab("Variations", id=variations.TAB_ID):
                handles.append(variations.build(backend))
            with gr.Tab("Upscale", id=upscale.TAB_ID):
                handles.append(upscale.build(backend))
            with gr.Tab("History", id=history.TAB_ID) as history_tab:
                past = history.build(backend, history_tab)
            with gr.Tab("PNG info", id=png_info.TAB_ID):
                _file, restore_button, recipe_json = png_info.build()
            with gr.Tab("Train", id=train.TAB_ID):
                training = train.build(backend)
            with gr.Tab("Models", id=models_panel.TAB_ID):
                models = models_panel.build(backend)
                gr.Markdown(f"**Outputs:** {past.view.notice}", elem_id="models-outputs")
        if training is not None and models.finetune is not None:  # the new file, listed
            training.run.then(lambda: gr.Dropdown(choices=models_panel.finetune_choices(
                backend)), None, models.finetune, api_visibility="private")
        _wire_send_to_inpaint(tabs, handles, past)
        _wire_upscale(tabs, handles)
        targets = {tabs, *(widget for h in handles for widget in h.controls.values()),
                   *(h.notes for h in handles)}
        by_tab = {h.tab_id: h for h in handles}
        sources = [by_tab[png_info.PIPELINE_TABS[pipeline]].controls[name]
                   for pipeline, name in png_info.RECIPE_SOURCES.items()]
        restore = png_info.restore_handler(tabs, handles, backend.manager)
        for button, recipe in ((restore_button, recipe_json), (past.restore, past.recipe_json)):
            button.click(restore, [recipe, *sources], targets,
                         api_visibility="private")  # queued: see png_info.build
    return demo


def _wire_send_to_inpaint(tabs: gr.Tabs, handles: list[TabHandles],
                          past: HistoryHandles) -> None:
    editor = next(h.controls["mask_editor"] for h in handles if h.tab_id == inpaint.TAB_ID)

    def to_inpaint(path: str) -> tuple:
        return editor_value(path), gr.Tabs(selected=inpaint.TAB_ID)

    def send(gallery, selected):
        return to_inpaint(picked_path(gallery, selected))

    @user_messages
    def send_saved(picked, request: gr.Request = None):
        return to_inpaint(past.view.inpaint_path(picked, request))

    for handle in handles:
        handle.send_to_inpaint.click(send, [handle.gallery, handle.selected], [editor, tabs],
                                     api_visibility="private")  # queued: errors show
    past.send_to_inpaint.click(send_saved, past.picked, [editor, tabs], api_visibility="private")


def _wire_upscale(tabs: gr.Tabs, handles: list[TabHandles]) -> None:
    """"Upscale picked image" under every result: the picture and its prompt into the
    Upscale tab, which is then shown."""
    target = next(h for h in handles if h.tab_id == upscale.TAB_ID).controls

    def send(gallery, selected):
        return (*upscale.sent_picture(picked_path(gallery, selected)),
                gr.Tabs(selected=upscale.TAB_ID))

    for handle in handles:
        if handle.send_to_upscale is not None:
            handle.send_to_upscale.click(send, [handle.gallery, handle.selected],
                                         [target["picture"], target["prompt"], tabs],
                                         api_visibility="private")
