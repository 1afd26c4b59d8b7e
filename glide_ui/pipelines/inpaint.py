"""Text-guided inpainting of an image of any size.

The painted mask (grown by `mask_grow`) decides a padded square crop; the crop goes to the
base inpainting model at 64 px (classifier-free guidance, the known region pasted into
every x0 prediction, as the reference notebook does), then to the inpainting upsampler at
256 px, and the result is pasted back into the original image with a `mask_feather` px
soft edge. Pixels farther than the feather from the grown mask keep their exact values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from glide_ui.glide.guidance import inpaint_denoised_fn, inpaint_model_inputs
from glide_ui.images import (
    Box,
    crop,
    crop_box,
    crop_mask,
    feather_alpha,
    grow_mask,
    paste_back,
    pil_to_tensor,
    resize_mask,
    tensor_to_pil,
)
from glide_ui.pipelines.common import (
    Start,
    begin,
    loading_notices,
    make_recipes,
    prompt_notices,
    upsample,
)
from glide_ui.pipelines.events import Event, Result
from glide_ui.pipelines.filmstrip import filmstrips
from glide_ui.pipelines.requests import InpaintRequest, SketchRequest
from glide_ui.pipelines.text2im import guided_base, preview_settings

BASE_SIZE = 64
UPSAMPLE_SIZE = 256


@dataclass(frozen=True)
class Patch:
    """The square the models work on: its box in the image, and at each model size the
    source pixels and the known-region mask (1 = keep, the models' convention)."""

    box: Box
    image: dict[int, torch.Tensor]  # size -> [1, 3, size, size] in [-1, 1]
    known: dict[int, torch.Tensor]  # size -> [1, 1, size, size] of 0/1


def prepare_patch(image: Image.Image, mask: np.ndarray, feather: int) -> Patch:
    """Crop around `mask` (already grown) and resize for the models. A model pixel is
    repainted when any painted pixel falls in it, so nothing painted is kept."""
    box = crop_box(mask, feather=feather)
    region, repaint = crop(image, box), crop_mask(mask, box)
    images, known = {}, {}
    for size in (BASE_SIZE, UPSAMPLE_SIZE):
        images[size] = pil_to_tensor(region.resize((size, size), Image.Resampling.BICUBIC))
        keep = ~resize_mask(repaint, size)
        known[size] = torch.from_numpy(keep.astype(np.float32))[None, None]
    return Patch(box, images, known)


@filmstrips
def inpaint(request: InpaintRequest, manager: Any) -> Iterator[Event]:
    """Repaint the masked part of `request.image`; see the module docstring."""
    request, seeds = yield from begin(request)
    yield from repaint("inpaint", request, seeds, manager)


def repaint(pipeline: str, request: InpaintRequest | SketchRequest, seeds: list[int],
            manager: Any, strength: float = 1.0) -> Iterator[Event]:
    """The inpainting stages on a checked request's image and mask, then its Result.

    strength < 1 (a sketch) starts each stage part-way from the image's own pixels in the
    patch, noised to the strength's step (see `common.Start`); 1 is plain inpainting.
    """
    names = repaint_models(request)
    yield from prompt_notices(request.prompt, manager, names)
    mask = grow_mask(request.mask, request.mask_grow)
    patch = prepare_patch(request.image, mask, request.mask_feather)
    yield from loading_notices(manager, names)
    with manager.use(*names) as models:
        x = yield from _base(models[0], request, seeds, patch, strength)
        if request.upsample:
            x = yield from _upsample(models[1], request, seeds, patch, x, strength)
    alpha = feather_alpha(mask, request.mask_feather)
    images = [paste_back(request.image, patch_image, patch.box, alpha)
              for patch_image in tensor_to_pil(x)]
    recipes = make_recipes(pipeline, request, seeds, manager, names,
                           **input_record(request.image, request.mask))
    yield Result(images, recipes)


def repaint_models(request: InpaintRequest | SketchRequest) -> tuple[str, ...]:
    """The models the inpainting stages of `request` use."""
    return ("base-inpaint", "upsample-inpaint") if request.upsample else ("base-inpaint",)


def _base(model: torch.nn.Module, request: InpaintRequest | SketchRequest, seeds: list[int],
          patch: Patch, strength: float) -> Any:
    image, known = _on(model, patch, BASE_SIZE)
    inputs = inpaint_model_inputs(image, known, copies=2)  # [cond, uncond] rows
    return (yield from guided_base(model, request, seeds,
                                   denoised_fn=inpaint_denoised_fn(image, known),
                                   start=Start(image, strength), **inputs))


def _upsample(model: torch.nn.Module, request: InpaintRequest | SketchRequest,
              seeds: list[int], patch: Patch, low_res: torch.Tensor, strength: float) -> Any:
    image, known = _on(model, patch, UPSAMPLE_SIZE)
    return (yield from upsample(model, request.prompt, low_res, seeds,
                                request.upsample_respacing, request.upsample_sampler,
                                request.upsample_temp, preview_settings(request),
                                denoised_fn=inpaint_denoised_fn(image, known),
                                start=Start(image, strength),
                                **inpaint_model_inputs(image, known)))


def _on(model: torch.nn.Module, patch: Patch, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    device = next(model.parameters()).device
    return patch.image[size].to(device), patch.known[size].to(device)


def input_record(image: Image.Image, mask: np.ndarray | None = None) -> dict[str, Any]:
    """What identifies the inputs in a recipe (the pixels themselves are not stored)."""
    record = {"image_size": list(image.size),
              "image_sha256": hashlib.sha256(np.asarray(image).tobytes()).hexdigest()}
    if mask is not None:
        record["mask_sha256"] = hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()
    return record
