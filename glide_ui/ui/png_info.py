"""The PNG info tab: read the recipe of a PNG made here and restore it into the right tab."""

from __future__ import annotations

import gradio as gr

from glide_ui.errors import GlideUIError
from glide_ui.images import load_image, read_recipe
from glide_ui.models import ModelManager
from glide_ui.pipelines.inpaint import input_record
from glide_ui.recipe import Recipe
from glide_ui.settings import TABS
from glide_ui.ui import sketch
from glide_ui.ui.backend import TabHandles
from glide_ui.ui.editor import picture_inputs
from glide_ui.ui.editor_values import editor_background, mask_from_editor
from glide_ui.ui.history import TAB_TITLES
from glide_ui.ui.settings import restore_plan, restore_warnings

TAB_ID = "png_info"
PIPELINE_TABS = TABS  # the tab that runs each pipeline (and where its recipes are restored)
# The widget (a control of the pipeline's tab) that holds each pipeline's input pictures,
# whose fingerprints a restore compares with the recipe's.
RECIPE_SOURCES = {"inpaint": "mask_editor", "outpaint": "image", "sketch": "sketch_editor",
                  "variations": "picture", "upscale": "picture"}
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


def restore_handler(tabs: gr.Tabs, handles: list[TabHandles], manager: ModelManager):
    """A handler that sets the widgets of the recipe's tab, says in that tab's notes what it
    could not bring back (before anyone runs), and switches to the tab. It takes the
    recipe JSON and the values of the RECIPE_SOURCES widgets, in that order (to check the
    inputs of a recipe that has them)."""

    def restore(recipe_json: str, *sources: object) -> dict:
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
        values, left = restore_plan(recipe)
        left += [name for name in values if name not in target.controls]
        updates = {target.controls[name]: value
                   for name, value in values.items() if name in target.controls}
        inputs = None
        if recipe.pipeline in RECIPE_SOURCES:
            source = dict(zip(RECIPE_SOURCES, sources, strict=True))[recipe.pipeline]
            inputs = _FINGERPRINTS[recipe.pipeline](source)
        warnings = restore_warnings(recipe, manager, left, inputs)
        note = restore_note(recipe, warnings)
        if warnings:
            gr.Warning("Settings restored, but the image may differ: see the notes.")
        else:
            gr.Info("Settings restored: running reproduces the image.")
        return {**updates, target.notes: note, tabs: gr.Tabs(selected=tab_id)}

    return restore


def editor_inputs(mask_editor: dict | None) -> dict[str, str] | None:
    """The fingerprints (as an inpainting recipe records them) of the picture and mask in
    the editor, or None when it holds no readable picture."""
    try:
        image = editor_background(mask_editor)
        return input_record(image, mask_from_editor(mask_editor, image.size))
    except GlideUIError:
        return None


_FINGERPRINTS = {"inpaint": editor_inputs, "outpaint": picture_inputs,
                 "sketch": sketch.editor_inputs, "variations": picture_inputs,
                 "upscale": picture_inputs}
_WITH_INPUTS = {"inpaint": " with the picture and mask in the editor",
                "outpaint": " with the picture loaded",
                "sketch": " with the picture and strokes in the editor",
                "variations": " with the picture loaded",
                "upscale": " with the picture loaded"}


def restore_note(recipe: Recipe, warnings: list[str]) -> str:
    """The tab's notes after a restore: what was restored, and what may make it differ."""
    head = f"Restored the settings of a PNG (seed {recipe.seed})"
    if not warnings:
        inputs = _WITH_INPUTS.get(recipe.pipeline, "")
        return f"- {head}: every setting is in place; running{inputs} gives the same image."
    return "\n".join([f"- ⚠️ {head}, but running may not give the same image:",
                      *(f"  - {warning}" for warning in warnings)])
