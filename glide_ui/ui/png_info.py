"""The PNG info tab: read the recipe of a PNG made here and restore it into the right tab."""

from __future__ import annotations

import gradio as gr

from glide_ui.errors import GlideUIError
from glide_ui.images import load_image, read_recipe
from glide_ui.recipe import Recipe
from glide_ui.ui.backend import TabHandles
from glide_ui.ui.settings import widget_values

TAB_ID = "png_info"
PIPELINE_TABS = {"text2im": "generate", "clip_guided": "clip_guided", "inpaint": "inpaint"}
TAB_TITLES = {"generate": "Generate", "clip_guided": "CLIP-guided", "inpaint": "Inpaint"}
NO_FILE = "Drop a PNG made by glide-ui to see how it was made."


def describe(path: str | None):
    """(image, parameters text, recipe JSON, message) for an uploaded file."""
    if not path:
        return None, "", "", NO_FILE
    try:
        image = load_image(path)
        recipe = read_recipe(path)
    except GlideUIError as error:
        raise gr.Error(str(error)) from None
    if recipe is None:
        return image, "", "", "This picture carries no glide-ui recipe (it was not made here, " \
                              "or its text chunks were stripped)."
    tab = PIPELINE_TABS.get(recipe.pipeline)
    where = f"the **{TAB_TITLES[tab]}** tab" if tab else f"pipeline `{recipe.pipeline}`"
    return image, recipe.parameters_line(), recipe.to_json(), \
        f"Made by {where}, seed {recipe.seed}. Press *Restore settings* to load them."


def build() -> tuple[gr.File, gr.Button, gr.Textbox]:
    """The tab's widgets; returns (file, restore button, recipe JSON box) for the page."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=4):
            file = gr.File(label="PNG made here", file_types=[".png"], type="filepath",
                           elem_id="png-info-file")
            image = gr.Image(label="Picture", format="png", interactive=False, height=280)
        with gr.Column(scale=5):
            message = gr.Markdown(NO_FILE, elem_id="png-info-message")
            parameters = gr.Textbox(label="Parameters", lines=4, interactive=False,
                                    buttons=["copy"])
            recipe_json = gr.Textbox(label="Recipe (JSON)", lines=6, interactive=False,
                                     buttons=["copy"])
            restore = gr.Button("Restore settings", variant="primary",
                                elem_id="png-info-restore")
    # Queued (in its own concurrency group, so it never waits behind a generation): Gradio
    # shows a handler's gr.Error on the page only for queued events.
    file.change(describe, file, [image, parameters, recipe_json, message], api_name="png_info")
    return file, restore, recipe_json


def restore_handler(tabs: gr.Tabs, handles: list[TabHandles]):
    """A handler that sets the widgets of the recipe's tab and switches to it."""

    def restore(recipe_json: str) -> dict:
        if not recipe_json:
            raise gr.Error("Drop a PNG made here first.")
        try:
            recipe = Recipe.from_json(recipe_json)
        except (ValueError, TypeError):
            raise gr.Error("This recipe cannot be read; drop the PNG again.") from None
        tab_id = PIPELINE_TABS.get(recipe.pipeline)
        target = next((h for h in handles if h.tab_id == tab_id), None)
        if target is None:
            raise gr.Error(f"No tab runs the pipeline {recipe.pipeline!r}.")
        updates = {target.controls[name]: value
                   for name, value in widget_values(recipe).items() if name in target.controls}
        if tab_id == "inpaint":
            gr.Info("Settings restored. Load the original picture and paint the mask again: "
                    "the recipe does not store them.")
        return {**updates, tabs: gr.Tabs(selected=tab_id)}

    return restore
