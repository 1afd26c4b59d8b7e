"""Reruns in the Python API: the recipe a picture carries, and what may make a rerun
differ from the original (where it runs, other weights, other inputs)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from glide_ui.errors import RequestError
from glide_ui.images import ImageSource, read_recipe
from glide_ui.models import ModelManager
from glide_ui.pipelines.jobs import JOBS
from glide_ui.recipe import Recipe, finetune_notes

# Recipe settings that say where an image was made rather than how.
_PLACE = ("device", "dtype")


def recipe_of(source: ImageSource) -> Recipe:
    """The recipe a PNG made by glide-ui carries; RequestError if it has none."""
    recipe = read_recipe(source)
    if recipe is None:
        name = f"{source} " if isinstance(source, (str, Path)) else ""
        raise RequestError(f"This picture {name}carries no glide-ui recipe (it was not made "
                           "by glide-ui, or its PNG text was stripped).")
    return recipe


def place_notes(recipe: Recipe, manager: ModelManager) -> list[str]:
    made = {key: str(recipe.settings.get(key)) for key in _PLACE if key in recipe.settings}
    here = {"device": str(manager.device), "dtype": str(manager.dtype).removeprefix("torch.")}
    if all(here[key] == value for key, value in made.items()):
        return []
    return [f"The image was made on {made.get('device', '?')} in {made.get('dtype', '?')}; "
            f"running on {here['device']} in {here['dtype']} gives slightly different pixels. "
            f"Choose device and dtype as it was made to get the same pixels."]


def reproduction_notes(original: Recipe, again: Recipe) -> list[str]:
    """What differs between a recipe and the recipe of its rerun, besides where it ran:
    other checkpoints or other inputs (an inpainting's picture or mask)."""
    notes = []
    models = sorted(name for name in original.models.keys() | again.models.keys()
                    if original.models.get(name) != again.models.get(name))
    if models:
        notes.append(f"Other weights than those that made the image: {', '.join(models)} "
                     "(the checkpoint files differ).")
    notes.extend(finetune_notes(original.settings.get("finetunes") or {},
                                again.settings.get("finetunes") or {}))
    # A setting added since the original was made counts as its default there.
    kind = JOBS[again.pipeline].request if again.pipeline in JOBS else None
    defaults = {f.name: f.default for f in fields(kind)} if kind else {}
    settings = sorted(key for key in original.settings.keys() | again.settings.keys()
                      if key not in (*_PLACE, "finetunes")
                      and original.settings.get(key, defaults.get(key))
                      != again.settings.get(key))
    if settings:
        notes.append(f"These differ from the recipe: {', '.join(settings)}.")
    return notes
