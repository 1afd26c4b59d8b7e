"""Widget values <-> request fields, both ways (requests out, recipes back into widgets), and
what a restored recipe cannot bring back."""

from __future__ import annotations

from typing import Any

from glide_ui import __version__
from glide_ui.errors import RequestError
from glide_ui.models import TINY_CHECKPOINT_PREFIX
from glide_ui.pipelines.requests import respacing_steps
from glide_ui.recipe import Recipe, finetune_notes
from glide_ui.settings import SETTINGS, added_later, canonical, settings_of

FILMSTRIP_FRAMES = 24  # per stage, when the page's "Keep a filmstrip" is ticked
# Recipe settings that record where and from what an image was made (not widgets).
RECORD_ONLY = ("device", "dtype", "compute_path", "image_size", "image_sha256", "mask_sha256",
               "finetunes")


def _spacing(values: dict[str, Any]) -> Any:
    spacing = values.get("base_respacing")
    spacing = spacing.strip() if isinstance(spacing, str) else ""
    return spacing or values["steps"]


def _text(value: Any) -> Any:
    return (value.strip() if isinstance(value, str) else value) or ""


# How a setting's request value comes from the page where its widget holds something else.
_FROM_PAGE = {
    "base_respacing": _spacing,  # the "Base respacing" box, else the "Base steps" slider
    "upsample": lambda values: bool(values["upsample"]),
    "upsample_respacing": lambda values: str(values["upsample_steps"]),
    "filmstrip_frames": lambda values: FILMSTRIP_FRAMES if values["filmstrip"] else 0,
    # All sides go on with a ratio: the request refuses sides that disagree with it (the page
    # zeroes them when a ratio is picked; an API caller may send both).
    "aspect_ratio": lambda values: _text(values["aspect_ratio"]),
}


def request_fields(job: str, values: dict[str, Any]) -> dict[str, Any]:
    """Request keyword arguments of `job` from its tab's widget values (keyed by widget
    name, as `glide_ui.settings` names them); settings whose widget is not in `values`
    are left to the request's default.

    A non-blank "Base respacing" ("ddim25", "fast27", "10,10,3,2,2") overrides the "Base
    steps" slider (evenly spaced, as the reference). Numbers are passed on as sent: the
    request's validation refuses a fractional, NaN or non-numeric value with a message
    naming the field (a conversion here would crash on them, or quietly turn 2.5 steps into
    2). "Keep a filmstrip" keeps FILMSTRIP_FRAMES previews per stage."""
    fields = {}
    for setting in settings_of(job):
        convert = _FROM_PAGE.get(setting.name)
        if setting.widget in values:
            fields[setting.name] = convert(values) if convert else values[setting.widget]
    return fields


def handler_defaults(job: str) -> dict[str, Any]:
    """Handler parameters of `job`'s tab an HTTP caller may leave out: the widgets of
    settings added since its first recipes, at the value those were made with."""
    return {SETTINGS[name].widget: value for name, value in added_later(job).items()}


def widget_values(recipe: Recipe) -> dict[str, Any]:
    """The widget values (keyed like the handlers' parameters, which are also the HTTP API's
    keyword names) that reproduce `recipe`'s image: batch size 1, its seed."""
    return restore_plan(recipe)[0]


def restore_plan(recipe: Recipe) -> tuple[dict[str, Any], list[str]]:
    """(widget values, the recipe's settings no widget holds). See `widget_values`.

    Each setting goes to the widget `glide_ui.settings` names for it (its page name, under
    its public name or an alias the recipe used); a setting added since the recipe was
    made takes the value it was made with (its default)."""
    job = recipe.pipeline
    values: dict[str, Any] = {"prompt": recipe.prompt, "seed": recipe.seed, "batch_size": 1}
    left = []
    for key, value in recipe.settings.items():
        setting = SETTINGS.get(canonical(key))
        if setting is None or job not in setting.jobs or setting.widget is None:
            if key not in RECORD_ONLY:
                left.append(key)
        elif setting.name == "base_respacing":
            values.update(base_step_values(value))
        else:
            values[setting.widget] = str(value) if setting.kind == "respacing" else value
    for name, value in added_later(job).items():
        values.setdefault(SETTINGS[name].widget, value)
    return values, left


def base_step_values(respacing: Any) -> dict[str, Any]:
    """The "Base steps" slider and "Base respacing" box for a respacing spec: a plain step
    count goes to the slider alone; any other spacing ("ddim10" keeps timesteps 0, 100,
    200..., "10" keeps 0, 111, 222...) goes to the box, the slider showing its count."""
    try:
        spec, steps = respacing_steps("Base steps", respacing)
    except RequestError:
        return {"base_respacing": str(respacing)}  # shown as is; the run will say what is wrong
    return {"steps": steps, "base_respacing": "" if spec == str(steps) else spec}


def restore_warnings(recipe: Recipe, manager: Any, left: list[str],
                     inputs: dict[str, str] | None = None) -> list[str]:
    """Why a run of the restored settings may not give the recipe's pixels, in words.

    `manager`: this server's ModelManager (its `place`, device and dtype as strings, and
    its weights); `left`: settings no widget holds;
    `inputs`: for a recipe of inputs (inpainting, outpainting, sketch, variations), the
    fingerprints of the picture (and mask) now in its tab (see
    `pipelines.inpaint.input_record`), or None when it holds none.
    """
    settings = recipe.settings
    notes = []
    made = _place(settings.get("device"), settings.get("dtype"))
    here = _place(*manager.place)
    if made and made != here:
        notes.append(f"It was made on {made}; this server runs on {here}, which the page "
                     "cannot change: the pixels will differ slightly.")
    elif settings.get("compute_path") and hasattr(manager, "path") \
            and settings["compute_path"] != manager.path.describe():
        notes.append(f"It was made with other CPU kernels ({settings['compute_path']}; here: "
                     f"{manager.path.describe()}): the pixels may differ slightly.")
    record = getattr(manager, "finetune_record", lambda name: None)
    used = {name: record(name) for name in recipe.models}
    notes.extend(finetune_notes(settings.get("finetunes") or {},
                                {name: value for name, value in used.items() if value}))
    other = [name for name, checkpoint in recipe.models.items()
             if _other_weights(name, checkpoint, manager)]
    if other:
        notes.append(f"It was made with other weights for {', '.join(other)} than this "
                     "server has (e.g. the tiny test models and the official ones): the "
                     "image will differ.")
    if recipe.version != __version__:
        notes.append(f"It was made with glide-ui {recipe.version}; this is {__version__}: "
                     "the pixels may differ.")
    if left:
        notes.append(f"This version has no setting for {', '.join(left)}; "
                     "it was not restored.")
    if "image_sha256" in settings:
        notes.extend(_inputs_note(recipe.pipeline, settings, inputs))
    return notes


def _other_weights(name: str, checkpoint: str, manager: Any) -> bool:
    """Whether `manager` runs other weights for `name` than `checkpoint` (as far as it can
    tell without reading a checkpoint file: an official file never hashed is not checked)."""
    if name not in manager.names or \
            str(checkpoint).startswith(TINY_CHECKPOINT_PREFIX) != manager.tiny:
        return True
    here = manager.known_checkpoint_id(name)
    return here is not None and here != checkpoint


def _place(device: Any, dtype: Any) -> str:
    return " in ".join(str(part) for part in (device, dtype) if part)


_PAINT = {"inpaint": " and paint the same mask", "sketch": " and paint the same strokes"}


def _inputs_note(pipeline: str, settings: dict[str, Any],
                 inputs: dict[str, str] | None) -> list[str]:
    size = settings.get("image_size")
    what = f"the same picture ({size[0]} x {size[1]} pixels)" if size else "the same picture"
    if inputs is None or inputs.get("image_sha256") != settings.get("image_sha256"):
        return [f"A recipe does not hold its pictures, only their fingerprints: "
                f"load {what}{_PAINT.get(pipeline, '')}, or the result will differ."]
    if inputs.get("mask_sha256") != settings.get("mask_sha256"):
        return ["The picture in the editor is the one it was made from, but the mask is "
                "not: paint the same mask, or the result will differ."]
    return []
