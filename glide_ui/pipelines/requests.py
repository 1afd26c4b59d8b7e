"""Request dataclasses: one per pipeline, validated before any work starts."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from PIL import Image

from glide_ui.errors import RequestError
from glide_ui.glide.diffusion import space_timesteps
from glide_ui.images import MAX_PIXELS, load_image, paint_strokes, read_mask
from glide_ui.pipelines.events import Status
from glide_ui.pipelines.masks import parse_shapes, repaint_mask
from glide_ui.pipelines.solvers import SOLVERS
from glide_ui.recipe import Recipe
from glide_ui.settings import (  # noqa: F401 (the limits, here for the pipelines and the page)
    CLIP_SOURCES,
    FAST_PRESET,
    JOBS,
    MAX_BATCH_SIZE,
    MAX_EXTENSION,
    MAX_FILMSTRIP_FRAMES,
    MAX_MASK_PIXELS,
    MAX_SEED,
    REFERENCE_SAMPLERS,
    REQUIRED,
    SAMPLERS,
    SETTINGS,
    Setting,
    canonical,
    settings_of,
)


def _from_schema(job: str):
    """The request dataclass of `job`, its fields declared once, in `glide_ui.settings`:
    the job's leading fields (pictures, the prompt), then its settings in declaration
    order, each with the job's default."""
    def build(cls: type) -> type:
        info = JOBS[job]
        annotations: dict[str, Any] = {}
        for name, default in info.fields:
            annotations[name] = _INPUT_TYPES.get(name, str)
            if default is not REQUIRED:
                setattr(cls, name, default)
        for setting in settings_of(job):
            if setting.name not in annotations:
                annotations[setting.name] = _KIND_TYPES[setting.kind]
                setattr(cls, setting.name, setting.default_for(job))
        cls.__annotations__ = annotations
        cls.job = job
        return dataclass(cls)

    return build


# image: a PIL image (bytes / a path are decoded by `validate`, upright by EXIF). mask: bool
# [H, W] at the image's upright size, True = repaint, or any form `images.read_mask` reads.
# strokes (sketch): an RGBA layer at the image's size (or a list of them). Pictures, arrays
# and paths only: the page's editor values are read by `glide_ui.ui.editor_values`.
_INPUT_TYPES = {"image": Image.Image, "mask": np.ndarray | None, "strokes": Any}
_KIND_TYPES = {"int": int, "float": float, "bool": bool, "choice": str, "text": str,
               "prompt": str, "respacing": str, "seed": int}


@_from_schema("text2im")
class Text2ImRequest:
    """Text to image: the base model with classifier-free guidance, then the upsampler."""


@_from_schema("clip_guided")
class ClipGuidedRequest:
    """CLIP-guided generation: the noise-aware CLIP or OpenAI's CLIP steers the base."""


@_from_schema("inpaint")
class InpaintRequest:
    """A region of `image` (where `mask` is True, or the shapes of `mask_shape`; then
    `mask` may be None) repainted."""


@_from_schema("outpaint")
class OutpaintRequest:
    """`image` extended by pixels per side, or to an aspect ratio."""


@_from_schema("sketch")
class SketchRequest:
    """`image` repainted where coloured `strokes` are (or, without strokes, where `mask`
    says the picture already shows them); `validate` paints them on and sets `mask`."""


@_from_schema("variations")
class VariationsRequest:
    """New pictures that keep `image`'s composition (SDEdit of its 64 px version)."""


Request = (Text2ImRequest | ClipGuidedRequest | InpaintRequest | OutpaintRequest | SketchRequest
           | VariationsRequest)
REQUEST_TYPES: dict[str, type] = {kind.job: kind for kind in (
    Text2ImRequest, ClipGuidedRequest, InpaintRequest, OutpaintRequest, SketchRequest,
    VariationsRequest)}
"""The request type of each job (canonical name), as `glide_ui.settings.JOBS`."""

# Documented limits: values outside them are refused with a RequestError (never clamped).
GUIDANCE_SCALE_RANGE = SETTINGS["guidance_scale"].range
CLIP_SCALE_RANGE = SETTINGS["clip_scale"].range
UPSAMPLE_TEMP_RANGE = SETTINGS["upsample_temp"].range
STRENGTH_RANGE = SETTINGS["strength"].range  # SDEdit: 0 keeps the input, 1 pure noise
MAX_BLEND = int(SETTINGS["blend"].range[1])  # outpainting: the blend band, in pixels
MAX_PROMPT_CHARS = 2000  # longer prompts are cut (with a warning) before tokenizing
MAX_RESPACING_CHARS = 100
ASPECT_RATIO_RANGE = (0.125, 8.0)  # width / height an outpainting may extend to
MIN_IMAGE_SIDE = 8
DIFFUSION_STEPS = 1000  # every GLIDE model is trained with 1000 steps
MIN_STEPS = 2
SOLVER_LABELS = {name: solver.label for name, solver in SOLVERS.items()}


def validate(request: Request) -> tuple[Request, list[Status]]:
    """Check `request` before any work: a normalised copy and the notices to show.

    Raises RequestError, whose message the page and the API show as is, for anything that
    cannot run. Every setting is checked as `glide_ui.settings` declares it (its kind,
    range or choices, its label in the message), then what is particular to the job (its
    pictures, masks, sides). Prompts are cleaned (control characters, unpaired
    surrogates), numbers given as integral floats (as web forms send them) become ints;
    the seed stays -1 when it is to be drawn.
    """
    job = getattr(type(request), "job", None)
    if job not in REQUEST_TYPES:
        raise RequestError(f"Unknown request type {type(request).__name__}.")
    changes: dict[str, Any] = {}
    notices: list[Status] = []
    for setting in settings_of(job):
        changes[setting.name] = _checked(setting, job, getattr(request, setting.name),
                                         changes, notices)
    changes.update(_JOB_CHECKS[job](request, changes, notices))
    return replace(request, **changes), notices


def _checked(setting: Setting, job: str, value: Any, changes: dict[str, Any],
             notices: list[Status]) -> Any:
    """`value` of `setting` as the request keeps it; RequestError naming its label."""
    kind, label = setting.kind, setting.label
    if kind == "int":
        return _int(label, value, *setting.range)
    if kind == "float":
        return _float(label, value, *setting.range)
    if kind == "choice":
        return _choice(label, value, setting.choices)
    if kind == "bool":
        return bool(value)
    if kind == "respacing":
        return respacing_steps(label, value)[0]
    if kind == "seed":
        return _seed(value, changes["batch_size"])
    if kind == "prompt":
        return _prompt(setting, job, value, notices)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"{label} must be text, got {value!r}.")
    return (value or "").strip()


def _prompt(setting: Setting, job: str, value: Any, notices: list[Status]) -> str:
    what = setting.label.lower()
    text, found = clean_prompt(value, what)
    notices.extend(found)
    if setting.name == "prompt" and not text and not JOBS[job].picture_prompt:
        if not JOBS[job].guided:
            raise RequestError("Write a prompt: CLIP guidance needs a text to steer towards.")
        notices.append(Status("The prompt is empty: generating without a text condition "
                              "(unconditional).", "warning"))
    return text


def _clip_checks(request: ClipGuidedRequest, changes: dict, notices: list) -> dict:
    allowed = SETTINGS["sampler"].choices_for("clip_guided")
    if changes["sampler"] not in allowed:
        raise RequestError(f"CLIP guidance works with the {' and '.join(allowed)} "
                           f"samplers only (it shifts their mean or score); "
                           f"{changes['sampler']!r} cannot take it.")
    return {}


def _inpaint_checks(request: InpaintRequest, changes: dict, notices: list) -> dict:
    parse_shapes(changes["mask_shape"])
    image = _picture(request.image, "inpaint", "inpainting")
    if request.mask is None and changes["mask_shape"]:
        mask = np.zeros((image.height, image.width), dtype=bool)
    else:
        mask = read_mask(request.mask, size=image.size)
    region = repaint_mask(mask, changes["mask_shape"], changes["mask_invert"],
                          changes["mask_grow"])
    if region.all():
        notices.append(Status("The mask covers the whole image: nothing of it is kept, the "
                              "result comes from the prompt alone.", "warning"))
    return {"image": image, "mask": mask}


def _picture(source: Any, verb: str, job: str) -> Image.Image:
    """The request's picture decoded (RGB, upright), big enough for the models."""
    if source is None:
        raise RequestError(f"Upload an image to {verb}.")
    image = load_image(source)
    if min(image.size) < MIN_IMAGE_SIDE:
        raise RequestError(f"The image is {image.width} x {image.height} pixels; {job} "
                           f"needs at least {MIN_IMAGE_SIDE} pixels on each side.")
    return image


def _sketch_checks(request: SketchRequest, changes: dict, notices: list) -> dict:
    image = _picture(request.image, "sketch on", "a sketch")
    if request.strokes is not None and request.mask is not None:
        raise RequestError("Give the strokes (a transparent layer) or a picture that shows "
                           "them with their mask, not both.")
    if request.strokes is not None:
        image, mask = paint_strokes(image, request.strokes)
    elif request.mask is not None:
        mask = read_mask(request.mask, size=image.size)
    else:
        mask = np.zeros((image.height, image.width), dtype=bool)
    if not mask.any():
        raise RequestError("The sketch is empty: paint coloured strokes on the picture where "
                           "it should change.")
    repaint_mask(mask, grow=changes["mask_grow"])  # refuses a shrink that leaves nothing
    return {"image": image, "strokes": None, "mask": mask}


def _variations_checks(request: VariationsRequest, changes: dict, notices: list) -> dict:
    image = _picture(request.image, "make variations of", "variations")
    if image.width != image.height:
        notices.append(Status(f"The picture is {image.width} x {image.height}: the models "
                              "work on squares, so its centre square is used.", "warning"))
    return {"image": image}


def _outpaint_checks(request: OutpaintRequest, changes: dict, notices: list) -> dict:
    image = _picture(request.image, "outpaint", "outpainting")
    sides = {name: changes[name] for name in SIDES}
    ratio = changes["aspect_ratio"]
    if ratio:
        wanted = extension_to_ratio(image.size, aspect_ratio(ratio))
        if any(sides.values()) and sides != wanted:  # (a recipe records both: they agree)
            raise RequestError("Give either pixels per side or an aspect ratio, not both.")
        sides = wanted
    elif not any(sides.values()):
        raise RequestError("Give how far to extend the picture: pixels on at least one "
                           "side, or an aspect ratio such as 16:9.")
    width = image.width + sides["left"] + sides["right"]
    height = image.height + sides["top"] + sides["bottom"]
    if width * height > MAX_PIXELS:
        raise RequestError(f"The extended picture would be {width} x {height} pixels; the "
                           f"limit is {MAX_PIXELS / 1e6:g} megapixels.")
    blend = changes["blend"]
    kept_w = image.width - blend * ((sides["left"] > 0) + (sides["right"] > 0))
    kept_h = image.height - blend * ((sides["top"] > 0) + (sides["bottom"] > 0))
    if min(kept_w, kept_h) < 1:
        raise RequestError(f"The blend band of {blend} px covers the whole {image.width} x "
                           f"{image.height} picture; make it narrower.")
    return {"image": image, **sides}


_JOB_CHECKS = {"text2im": lambda request, changes, notices: {}, "clip_guided": _clip_checks,
               "inpaint": _inpaint_checks, "outpaint": _outpaint_checks,
               "sketch": _sketch_checks, "variations": _variations_checks}
"""What each job checks beyond its settings (pictures, masks, sides), after them."""


def register(kind: type, checks: Any) -> None:
    """Add the request type of a job declared in a module of its own (`kind.job`) and what
    it checks beyond its settings: checks(request, changes, notices) -> changed fields."""
    REQUEST_TYPES[kind.job] = kind
    _JOB_CHECKS[kind.job] = checks


SIDES = ("left", "top", "right", "bottom")


def aspect_ratio(text: str) -> float:
    """"16:9" (or "1.85:1", "4/3") -> width / height; RequestError unless it is two
    positive numbers giving a ratio in ASPECT_RATIO_RANGE."""
    parts = text.replace("/", ":").replace("x", ":").split(":")
    try:
        width, height = (float(part) for part in parts)
    except ValueError:
        width = height = math.nan
    low, high = ASPECT_RATIO_RANGE
    if not (width > 0 and height > 0 and low <= width / height <= high):
        raise RequestError(f"Aspect ratio: write width:height such as 16:9 or 4:3 (from "
                           f"1:{1 / low:g} to {high:g}:1), not {text!r}.")
    return width / height


def extension_to_ratio(size: tuple[int, int], ratio: float) -> dict[str, int]:
    """Pixels to add on each side of a picture of `size` (width, height) to bring it to
    `ratio` (width / height): the short way only, half on each side (the odd pixel right
    or bottom). RequestError when it already has that ratio (to the pixel)."""
    width, height = size
    wide, tall = round(height * ratio) - width, round(width / ratio) - height
    sides = dict.fromkeys(SIDES, 0)
    if wide > 0:
        sides["left"], sides["right"] = wide // 2, wide - wide // 2
    elif tall > 0:
        sides["top"], sides["bottom"] = tall // 2, tall - tall // 2
    else:
        raise RequestError(f"The {width} x {height} picture already has that aspect ratio; "
                           "nothing to extend.")
    if max(sides.values()) > MAX_EXTENSION:
        raise RequestError(f"Reaching that aspect ratio needs {max(sides.values())} px on a "
                           f"side; the limit is {MAX_EXTENSION}.")
    return sides


def clean_prompt(prompt: object, what: str = "prompt") -> tuple[str, list[Status]]:
    """The prompt as it will be tokenized, and notices about what was changed.

    Control characters (other than tab and newline) become spaces, unpaired surrogates
    become "?", a prompt of only whitespace counts as empty, and a prompt longer than
    MAX_PROMPT_CHARS is cut there (the tokenizer cuts it further at its text context).
    """
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise RequestError(f"The {what} must be text.")
    notices: list[Status] = []
    text = prompt.encode("utf-8", "replace").decode("utf-8")
    controls = sum(1 for char in text if _is_control(char))
    if controls:
        text = "".join(" " if _is_control(char) else char for char in text)
        notices.append(Status(f"Replaced {controls} control character(s) in the {what} "
                              "with spaces.", "warning"))
    if len(text) > MAX_PROMPT_CHARS:
        text = text[:MAX_PROMPT_CHARS]
        notices.append(Status(f"The {what} is longer than {MAX_PROMPT_CHARS} characters; "
                              "only its beginning is used.", "warning"))
    return (text if text.strip() else ""), notices


def _is_control(char: str) -> bool:
    return char not in "\t\n" and unicodedata.category(char) == "Cc"


def respacing_steps(label: str, spec: object) -> tuple[str, int]:
    """A respacing spec ("100", "fast27", "ddim25", "10,10,3,2,2"; an int means "N")
    normalised, and its number of steps; RequestError with the accepted forms if invalid."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = str(_int(label, spec, MIN_STEPS, DIFFUSION_STEPS))
    if not isinstance(spec, str) or not spec.strip() or len(spec) > MAX_RESPACING_CHARS:
        raise RequestError(f"{label}: give a number of steps ({MIN_STEPS} to {DIFFUSION_STEPS}), "
                           "'ddimN', 'fast27' or a comma list such as '10,10,3,2,2'.")
    spec = spec.strip().replace(" ", "")
    try:
        steps = len(space_timesteps(DIFFUSION_STEPS, spec))
    except ValueError as error:
        raise RequestError(f"{label}: {error}.") from None
    if steps < MIN_STEPS:
        # The posterior's clipped log variance needs a second step (so does the reference).
        raise RequestError(f"{label}: {spec!r} gives {steps} step; use at least {MIN_STEPS}.")
    return spec, steps


def _number(label: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{label} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise RequestError(f"{label} must be a finite number, got {value}.")
    return value


def _int(label: str, value: object, low: int, high: int) -> int:
    number = _number(label, value)
    if number != int(number) or not low <= number <= high:
        raise RequestError(f"{label} must be a whole number from {low} to {high}, got {value}.")
    return int(number)


def _float(label: str, value: object, low: float, high: float) -> float:
    number = float(_number(label, value))
    if not low <= number <= high:
        raise RequestError(f"{label} must be between {low:g} and {high:g}, got {value}.")
    return number


def _choice(label: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise RequestError(f"{label} must be one of {', '.join(choices)}; got {value!r}.")
    return str(value)


def _seed(value: object, batch_size: int) -> int:
    if value is None or (not isinstance(value, bool) and value == -1):
        return -1
    highest = MAX_SEED - (batch_size - 1)
    return _int(f"Seed (with batch size {batch_size}; -1 draws one)", value, 0, highest)


def request_from_recipe(recipe: Recipe, **inputs: Any) -> Request:
    """The request that reproduces the image of `recipe` (batch size 1, its seed).

    Inpainting, outpainting, sketch and variations recipes identify their inputs only by
    hash: pass them again as `image=..., mask=...` (for a sketch, the picture with its
    strokes and their mask; no mask for an outpainting or variations, nor for an
    inpainting made with mask shapes alone). Settings the request does not know (device,
    dtype, hashes) are left out; run on the recorded device and dtype for bit-identical
    pixels.
    """
    kind = REQUEST_TYPES.get(recipe.pipeline)
    if kind is None:
        raise RequestError(f"Unknown pipeline {recipe.pipeline!r} in the recipe.")
    names = {field.name for field in fields(kind)}
    if kind is InpaintRequest and recipe.settings.get("mask_shape"):
        inputs = {"mask": None, **inputs}
    needed = JOBS[recipe.pipeline].rerun_inputs
    if not set(needed) <= inputs.keys():
        raise RequestError(f"This {recipe.pipeline} recipe needs its {' and '.join(needed)} to "
                           "be given again (the recipe holds only their fingerprints): "
                           + ", ".join(f"--{name} on the command line, {name}= in Python"
                                       for name in needed) + ".")
    settings = {canonical(key): value for key, value in recipe.settings.items()
                if canonical(key) in names}
    return kind(**{**settings, **inputs, "prompt": recipe.prompt, "seed": recipe.seed,
                   "batch_size": 1})
