"""Request dataclasses: one per pipeline, validated before any work starts."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import numpy as np
from PIL import Image

from glide_ui.checkpoints import OPENAI_CLIP_NAMES
from glide_ui.errors import RequestError
from glide_ui.glide.diffusion import space_timesteps
from glide_ui.images import MAX_PIXELS, load_image, mask_from_editor, paint_strokes
from glide_ui.pipelines.events import Status
from glide_ui.pipelines.masks import parse_shapes, repaint_mask
from glide_ui.pipelines.solvers import SOLVERS
from glide_ui.recipe import Recipe

# The reference's samplers, then the diffusers solvers (glide_ui.pipelines.solvers.SOLVERS).
Sampler = Literal["ancestral", "ddim", "dpmpp_2m", "dpmpp_2m_sde", "unipc", "euler_a", "heun"]


@dataclass
class Text2ImRequest:
    prompt: str
    batch_size: int = 1
    seed: int = -1  # -1 draws one; image i uses seed + i
    guidance_scale: float = 3.0
    base_respacing: str = "100"
    sampler: Sampler = "ancestral"
    upsample: bool = True
    upsample_respacing: str = "fast27"
    upsample_temp: float = 0.997
    preview_interval: float = 0.5  # seconds between previews; first and last always shown
    preview_noisy: bool = False
    upsample_sampler: Sampler = "ddim"  # as the reference text2im notebook
    filmstrip_frames: int = 0  # keep this many evenly spaced previews per stage (0 = none)


@dataclass
class ClipGuidedRequest:
    prompt: str
    batch_size: int = 1
    seed: int = -1
    clip_source: Literal["glide", "openai"] = "glide"  # noise-aware CLIP or OpenAI CLIP
    clip_scale: float = 3.0
    openai_clip_model: str = "ViT-B/32"
    base_respacing: str = "100"
    sampler: Sampler = "ancestral"
    upsample: bool = True
    upsample_respacing: str = "fast27"
    upsample_temp: float = 0.997
    preview_interval: float = 0.5
    preview_noisy: bool = False
    upsample_sampler: Sampler = "ddim"  # as the reference clip_guided notebook
    filmstrip_frames: int = 0  # keep this many evenly spaced previews per stage (0 = none)


@dataclass
class InpaintRequest:
    image: Image.Image  # (bytes / a path are decoded by `validate`, upright by EXIF)
    # bool [H, W] at the image's upright size, True = repaint; or any form
    # `images.mask_from_editor` reads (an editor value, a layer, a black-and-white image)
    mask: np.ndarray
    prompt: str
    batch_size: int = 1
    seed: int = -1
    guidance_scale: float = 5.0
    base_respacing: str = "100"
    sampler: Sampler = "ancestral"
    upsample: bool = True
    upsample_respacing: str = "fast27"
    upsample_temp: float = 0.997
    mask_grow: int = 0  # pixels (at the image's size) added around the mask; < 0 shrinks
    mask_feather: int = 8  # pixels of soft edge when pasting back into a large image
    preview_interval: float = 0.5
    preview_noisy: bool = False
    upsample_sampler: Sampler = "ancestral"  # as the reference inpaint notebook
    filmstrip_frames: int = 0  # keep this many evenly spaced previews per stage (0 = none)
    mask_invert: bool = False  # the mask marks what to keep: everything else is repainted
    # shapes added to the mask, "rect:x0,y0,x1,y1; ellipse:..." (see pipelines.masks);
    # with shapes, `mask` may be None
    mask_shape: str = ""


@dataclass
class OutpaintRequest:
    image: Image.Image  # (bytes / a path are decoded by `validate`, upright by EXIF)
    prompt: str = ""
    left: int = 0  # pixels added on each side...
    top: int = 0
    right: int = 0
    bottom: int = 0
    aspect_ratio: str = ""  # ...or "16:9": extend the short way, equally on both sides
    blend: int = 8  # pixels of the original next to the new area that the models blend in
    batch_size: int = 1
    seed: int = -1
    guidance_scale: float = 5.0
    base_respacing: str = "100"
    sampler: Sampler = "ancestral"
    upsample: bool = True
    upsample_respacing: str = "fast27"
    upsample_temp: float = 0.997
    preview_interval: float = 0.5
    preview_noisy: bool = False
    upsample_sampler: Sampler = "ancestral"  # as the reference inpaint notebook
    filmstrip_frames: int = 0


@dataclass
class SketchRequest:
    image: Image.Image  # the picture (bytes / a path are decoded by `validate`)
    # Coloured strokes: an RGBA layer at the image's size (transparent = untouched) or an
    # editor value {background, layers, composite} (its layers). `validate` paints them on
    # the image and sets `mask` to where they are (then `strokes` is None).
    strokes: Any = None
    prompt: str = ""
    strength: float = 0.7  # 0: the input unchanged; 1: plain inpainting of the region
    mask: np.ndarray | None = None  # without strokes: where `image` already shows them
    batch_size: int = 1
    seed: int = -1
    guidance_scale: float = 5.0
    base_respacing: str = "100"
    sampler: Sampler = "ancestral"
    upsample: bool = True
    upsample_respacing: str = "fast27"
    upsample_temp: float = 0.997
    mask_grow: int = 0  # as for inpainting: pixels added around the strokes; < 0 shrinks
    mask_feather: int = 8
    preview_interval: float = 0.5
    preview_noisy: bool = False
    upsample_sampler: Sampler = "ancestral"  # as the inpainting it builds on
    filmstrip_frames: int = 0


@dataclass
class VariationsRequest:
    image: Image.Image  # the picture whose composition the variations keep (any size)
    prompt: str
    strength: float = 0.6  # 0: the picture's own 64 px version; 1: text to image
    batch_size: int = 1
    seed: int = -1
    guidance_scale: float = 3.0
    base_respacing: str = "100"
    sampler: Sampler = "ancestral"
    upsample: bool = True
    upsample_respacing: str = "fast27"
    upsample_temp: float = 0.997
    preview_interval: float = 0.5
    preview_noisy: bool = False
    upsample_sampler: Sampler = "ddim"  # the upsampler as in text to image
    filmstrip_frames: int = 0


Request = (Text2ImRequest | ClipGuidedRequest | InpaintRequest | OutpaintRequest | SketchRequest
           | VariationsRequest)

# Documented limits: values outside them are refused with a RequestError (never clamped).
MAX_BATCH_SIZE = 8
# Image i uses seed + i, so seed + batch_size - 1 must fit too. 31 bits: torch's CPU
# generators keep only the low 32 bits of a seed, and the upsampler's noise uses the
# upper half of that range (see pipelines.common.UPSAMPLE_SEED_OFFSET).
MAX_SEED = 2**31 - 1
GUIDANCE_SCALE_RANGE = (0.0, 20.0)  # classifier-free guidance; 0 = unconditional, 1 = plain
CLIP_SCALE_RANGE = (0.0, 50.0)
UPSAMPLE_TEMP_RANGE = (0.0, 1.5)
STRENGTH_RANGE = (0.0, 1.0)  # SDEdit: 0 keeps the input, 1 starts from pure noise
PREVIEW_INTERVAL_RANGE = (0.0, 3600.0)
MAX_PROMPT_CHARS = 2000  # longer prompts are cut (with a warning) before tokenizing
MAX_RESPACING_CHARS = 100
MAX_MASK_PIXELS = 256  # mask grow (either way) and feather, in pixels of the input image
MAX_EXTENSION = 2048  # outpainting: pixels added on one side
MAX_BLEND = 64  # outpainting: the blend band, in pixels of the input image
ASPECT_RATIO_RANGE = (0.125, 8.0)  # width / height an outpainting may extend to
MIN_IMAGE_SIDE = 8
DIFFUSION_STEPS = 1000  # every GLIDE model is trained with 1000 steps
MIN_STEPS = 2
MAX_FILMSTRIP_FRAMES = 64  # per stage: the memory bound, whatever the step count
REFERENCE_SAMPLERS = ("ancestral", "ddim")
SAMPLERS = (*REFERENCE_SAMPLERS, *SOLVERS)
SOLVER_LABELS = {name: solver.label for name, solver in SOLVERS.items()}
CLIP_SOURCES = ("glide", "openai")
FAST_PRESET = {"sampler": "dpmpp_2m", "base_respacing": "15",
               "upsample_sampler": "dpmpp_2m", "upsample_respacing": "10"}
"""The one-click Fast settings: DPM-Solver++ 2M, 15 base and 10 upsampler steps (the
README gives the published evidence and the bench figures)."""


def validate(request: Request) -> tuple[Request, list[Status]]:
    """Check `request` before any work: a normalised copy and the notices to show.

    Raises RequestError, whose message the page and the API show as is, for anything that
    cannot run. Prompts are cleaned (control characters, unpaired surrogates), numbers
    given as integral floats (as web forms send them) become ints; the seed stays -1 when
    it is to be drawn.
    """
    if isinstance(request, Text2ImRequest):
        return _validate_text2im(request)
    if isinstance(request, ClipGuidedRequest):
        return _validate_clip_guided(request)
    if isinstance(request, InpaintRequest):
        return _validate_inpaint(request)
    if isinstance(request, OutpaintRequest):
        return _validate_outpaint(request)
    if isinstance(request, SketchRequest):
        return _validate_sketch(request)
    if isinstance(request, VariationsRequest):
        return _validate_variations(request)
    raise RequestError(f"Unknown request type {type(request).__name__}.")


def _validate_common(request: Request, allow_empty_prompt: bool) -> tuple[dict, list[Status]]:
    prompt, notices = clean_prompt(request.prompt)
    if not prompt:
        if not allow_empty_prompt:
            raise RequestError("Write a prompt: CLIP guidance needs a text to steer towards.")
        notices.append(Status("The prompt is empty: generating without a text condition "
                              "(unconditional).", "warning"))
    batch_size = _int("Batch size", request.batch_size, 1, MAX_BATCH_SIZE)
    changes = dict(
        prompt=prompt,
        batch_size=batch_size,
        seed=_seed(request.seed, batch_size),
        base_respacing=respacing_steps("Base steps", request.base_respacing)[0],
        sampler=_choice("Sampler", request.sampler, SAMPLERS),
        upsample_sampler=_choice("Upsampler sampler", request.upsample_sampler, SAMPLERS),
        upsample=bool(request.upsample),
        upsample_respacing=respacing_steps("Upsampler steps", request.upsample_respacing)[0],
        upsample_temp=_float("Upsample temperature", request.upsample_temp,
                             *UPSAMPLE_TEMP_RANGE),
        preview_interval=_float("Preview interval", request.preview_interval,
                                *PREVIEW_INTERVAL_RANGE),
        preview_noisy=bool(request.preview_noisy),
        filmstrip_frames=_int("Filmstrip frames", request.filmstrip_frames, 0,
                              MAX_FILMSTRIP_FRAMES),
    )
    return changes, notices


def _validate_text2im(request: Text2ImRequest) -> tuple[Text2ImRequest, list[Status]]:
    changes, notices = _validate_common(request, allow_empty_prompt=True)
    changes["guidance_scale"] = _float("Guidance scale", request.guidance_scale,
                                       *GUIDANCE_SCALE_RANGE)
    return replace(request, **changes), notices


def _validate_clip_guided(request: ClipGuidedRequest) -> tuple[ClipGuidedRequest, list[Status]]:
    changes, notices = _validate_common(request, allow_empty_prompt=False)
    changes["clip_source"] = _choice("CLIP source", request.clip_source, CLIP_SOURCES)
    if changes["sampler"] not in REFERENCE_SAMPLERS:
        raise RequestError(f"CLIP guidance works with the {' and '.join(REFERENCE_SAMPLERS)} "
                           f"samplers only (it shifts their mean or score); "
                           f"{changes['sampler']!r} cannot take it.")
    changes["clip_scale"] = _float("CLIP guidance scale", request.clip_scale, *CLIP_SCALE_RANGE)
    changes["openai_clip_model"] = _choice("OpenAI CLIP model", request.openai_clip_model,
                                           OPENAI_CLIP_NAMES)
    return replace(request, **changes), notices


def _validate_inpaint(request: InpaintRequest) -> tuple[InpaintRequest, list[Status]]:
    changes, notices = _validate_repaint(request)
    changes["mask_invert"] = bool(request.mask_invert)
    parse_shapes(request.mask_shape)
    changes["mask_shape"] = (request.mask_shape or "").strip()
    image = _picture(request.image, "inpaint", "inpainting")
    if request.mask is None and changes["mask_shape"]:
        mask = np.zeros((image.height, image.width), dtype=bool)
    else:
        mask = mask_from_editor(request.mask, size=image.size)
    region = repaint_mask(mask, changes["mask_shape"], changes["mask_invert"],
                          changes["mask_grow"])
    if region.all():
        notices.append(Status("The mask covers the whole image: nothing of it is kept, the "
                              "result comes from the prompt alone.", "warning"))
    return replace(request, image=image, mask=mask, **changes), notices


def _validate_repaint(request: InpaintRequest | SketchRequest) -> tuple[dict, list[Status]]:
    """The settings inpainting and sketching share (the picture and mask aside)."""
    changes, notices = _validate_common(request, allow_empty_prompt=True)
    changes["guidance_scale"] = _float("Guidance scale", request.guidance_scale,
                                       *GUIDANCE_SCALE_RANGE)
    changes["mask_grow"] = _int("Mask grow", request.mask_grow, -MAX_MASK_PIXELS,
                                MAX_MASK_PIXELS)
    changes["mask_feather"] = _int("Mask feather", request.mask_feather, 0, MAX_MASK_PIXELS)
    return changes, notices


def _picture(source: Any, verb: str, job: str) -> Image.Image:
    """The request's picture decoded (RGB, upright), big enough for the models."""
    if source is None:
        raise RequestError(f"Upload an image to {verb}.")
    image = load_image(source)
    if min(image.size) < MIN_IMAGE_SIDE:
        raise RequestError(f"The image is {image.width} x {image.height} pixels; {job} "
                           f"needs at least {MIN_IMAGE_SIDE} pixels on each side.")
    return image


def _strength(value: object) -> float:
    return _float("Strength", value, *STRENGTH_RANGE)


def _validate_sketch(request: SketchRequest) -> tuple[SketchRequest, list[Status]]:
    changes, notices = _validate_repaint(request)
    changes["strength"] = _strength(request.strength)
    image = _picture(request.image, "sketch on", "a sketch")
    if request.strokes is not None and request.mask is not None:
        raise RequestError("Give the strokes (a transparent layer) or a picture that shows "
                           "them with their mask, not both.")
    if request.strokes is not None:
        image, mask = paint_strokes(image, request.strokes)
    elif request.mask is not None:
        mask = mask_from_editor(request.mask, size=image.size)
    else:
        mask = np.zeros((image.height, image.width), dtype=bool)
    if not mask.any():
        raise RequestError("The sketch is empty: paint coloured strokes on the picture where "
                           "it should change.")
    repaint_mask(mask, grow=changes["mask_grow"])  # refuses a shrink that leaves nothing
    return replace(request, image=image, strokes=None, mask=mask, **changes), notices


def _validate_variations(request: VariationsRequest) \
        -> tuple[VariationsRequest, list[Status]]:
    changes, notices = _validate_common(request, allow_empty_prompt=True)
    changes["guidance_scale"] = _float("Guidance scale", request.guidance_scale,
                                       *GUIDANCE_SCALE_RANGE)
    changes["strength"] = _strength(request.strength)
    image = _picture(request.image, "make variations of", "variations")
    if image.width != image.height:
        notices.append(Status(f"The picture is {image.width} x {image.height}: the models "
                              "work on squares, so its centre square is used.", "warning"))
    return replace(request, image=image, **changes), notices


def _validate_outpaint(request: OutpaintRequest) -> tuple[OutpaintRequest, list[Status]]:
    changes, notices = _validate_common(request, allow_empty_prompt=True)
    changes["guidance_scale"] = _float("Guidance scale", request.guidance_scale,
                                       *GUIDANCE_SCALE_RANGE)
    image = _picture(request.image, "outpaint", "outpainting")
    sides = {name: _int(f"Extension {name} (px)", getattr(request, name), 0, MAX_EXTENSION)
             for name in SIDES}
    ratio = (request.aspect_ratio or "").strip()
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
    blend = _int("Blend band (px)", request.blend, 0, MAX_BLEND)
    kept_w = image.width - blend * ((sides["left"] > 0) + (sides["right"] > 0))
    kept_h = image.height - blend * ((sides["top"] > 0) + (sides["bottom"] > 0))
    if min(kept_w, kept_h) < 1:
        raise RequestError(f"The blend band of {blend} px covers the whole {image.width} x "
                           f"{image.height} picture; make it narrower.")
    return replace(request, image=image, aspect_ratio=ratio, blend=blend, **sides,
                   **changes), notices


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


def clean_prompt(prompt: object) -> tuple[str, list[Status]]:
    """The prompt as it will be tokenized, and notices about what was changed.

    Control characters (other than tab and newline) become spaces, unpaired surrogates
    become "?", a prompt of only whitespace counts as empty, and a prompt longer than
    MAX_PROMPT_CHARS is cut there (the tokenizer cuts it further at its text context).
    """
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise RequestError("The prompt must be text.")
    notices: list[Status] = []
    text = prompt.encode("utf-8", "replace").decode("utf-8")
    controls = sum(1 for char in text if _is_control(char))
    if controls:
        text = "".join(" " if _is_control(char) else char for char in text)
        notices.append(Status(f"Replaced {controls} control character(s) in the prompt with "
                              "spaces.", "warning"))
    if len(text) > MAX_PROMPT_CHARS:
        text = text[:MAX_PROMPT_CHARS]
        notices.append(Status(f"The prompt is longer than {MAX_PROMPT_CHARS} characters; "
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


_REQUEST_TYPES = {"text2im": Text2ImRequest, "clip_guided": ClipGuidedRequest,
                  "inpaint": InpaintRequest, "outpaint": OutpaintRequest,
                  "sketch": SketchRequest, "variations": VariationsRequest}
# What a recipe does not hold (only fingerprints): the inputs to give again on a rerun.
_RECIPE_INPUTS = {InpaintRequest: ("image", "mask"), OutpaintRequest: ("image",),
                  SketchRequest: ("image", "mask"), VariationsRequest: ("image",)}


def request_from_recipe(recipe: Recipe, **inputs: Any) -> Request:
    """The request that reproduces the image of `recipe` (batch size 1, its seed).

    Inpainting, outpainting, sketch and variations recipes identify their inputs only by
    hash: pass them again as `image=..., mask=...` (for a sketch, the picture with its
    strokes and their mask; no mask for an outpainting or variations, nor for an
    inpainting made with mask shapes alone). Settings the request does not know (device,
    dtype, hashes) are left out; run on the recorded device and dtype for bit-identical
    pixels.
    """
    kind = _REQUEST_TYPES.get(recipe.pipeline)
    if kind is None:
        raise RequestError(f"Unknown pipeline {recipe.pipeline!r} in the recipe.")
    names = {field.name for field in fields(kind)}
    if kind is InpaintRequest and recipe.settings.get("mask_shape"):
        inputs = {"mask": None, **inputs}
    needed = _RECIPE_INPUTS.get(kind, ())
    if not set(needed) <= inputs.keys():
        raise RequestError(f"This {recipe.pipeline} recipe needs its {' and '.join(needed)} to "
                           "be given again (the recipe holds only their fingerprints): "
                           + ", ".join(f"--{name} on the command line, {name}= in Python"
                                       for name in needed) + ".")
    settings = {key: value for key, value in recipe.settings.items() if key in names}
    return kind(**{**settings, **inputs, "prompt": recipe.prompt, "seed": recipe.seed,
                   "batch_size": 1})
