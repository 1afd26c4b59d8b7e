"""Text-guided inpainting of an image of any size.

The painted mask (with its shapes, inverted when it marks what to keep, grown or shrunk
by `mask_grow`; see pipelines.masks) decides a padded square crop; the crop goes to the
base inpainting model at 64 px (classifier-free guidance, the known region pasted into
every x0 prediction, as the reference notebook does), then to the inpainting upsampler at
256 px, and the result is pasted back into the original image with a `mask_feather` px
soft edge. Pixels farther than the feather from the grown mask keep their exact values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
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
    paste_back,
    pil_to_tensor,
    resize_mask,
    tensor_to_pil,
)
from glide_ui.pipelines.common import (
    StageEvents,
    Start,
    batches_images,
    begin,
    loading_notices,
    make_recipes,
    prompt_notices,
    upsample,
)
from glide_ui.pipelines.events import Event, Result
from glide_ui.pipelines.filmstrip import filmstrips
from glide_ui.pipelines.masks import repaint_mask
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
    """Crop around `mask` (already grown) and resize for the models."""
    return patch_at(image, mask, crop_box(mask, feather=feather))


def patch_at(image: Image.Image, mask: np.ndarray, box: Box) -> Patch:
    """The models' view of `box` of `image` (parts outside it count as repainted) with
    `mask` (True = repaint). A model pixel is repainted when any painted pixel falls in
    it, so nothing painted is kept."""
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
    mask = repaint_region(request)
    patch = prepare_patch(request.image, mask, request.mask_feather)
    yield from loading_notices(manager, names)
    together = batches_images(request, manager)
    with manager.use(*names) as models:
        x = yield from base_stage(models[0], request, seeds, [patch], strength=strength,
                                  batched=together)
        if request.upsample:
            x = yield from upsample_stage(models[1], request, seeds, [patch], x,
                                          strength=strength, batched=together)
    alpha = feather_alpha(mask, request.mask_feather)
    images = [paste_back(request.image, patch_image, patch.box, alpha)
              for patch_image in tensor_to_pil(x)]
    recipes = make_recipes(pipeline, request, seeds, manager, names,
                           **input_record(request.image, request.mask))
    yield Result(images, recipes)


def repaint_models(request: Any) -> tuple[str, ...]:
    """The models the inpainting stages of `request` use."""
    return ("base-inpaint", "upsample-inpaint") if request.upsample else ("base-inpaint",)


def repaint_region(request: InpaintRequest | SketchRequest) -> np.ndarray:
    """The region (bool [H, W]) a checked request repaints: its mask with its shapes,
    inverted and grown as the request says (a sketch has no shapes nor invert)."""
    return repaint_mask(request.mask, getattr(request, "mask_shape", ""),
                        getattr(request, "mask_invert", False), request.mask_grow)


def base_stage(model: torch.nn.Module, request: Any, seeds: list[int],
               patches: Sequence[Patch], generators: list[torch.Generator] | None = None,
               strength: float = 1.0, batched: bool = False) -> StageEvents:
    """The 64 px base inpainting stage (classifier-free guidance, the known region pasted
    into every x0 prediction, as the reference notebook does) on `patches`: one shared by
    the batch, or one per image. With strength < 1 it starts part-way from the patches'
    own pixels (SDEdit, see `common.Start`); `batched`: one model call for the images
    (`common.image_model_fn`). Returns x [B, 3, 64, 64]."""
    image, known = _on(model, patches, BASE_SIZE)
    return (yield from guided_base(model, request, seeds, generators=generators,
                                   denoised_fn=inpaint_denoised_fn(image, known),
                                   start=Start(image, strength), batched=batched,
                                   image_inputs=_rows(image, known, len(seeds), copies=2)))


def upsample_stage(model: torch.nn.Module, request: Any, seeds: list[int],
                   patches: Sequence[Patch], low_res: torch.Tensor,
                   generators: list[torch.Generator] | None = None,
                   strength: float = 1.0, batched: bool = False) -> StageEvents:
    """The 256 px inpainting upsampler on `low_res` [B, 3, 64, 64] and `patches` (both as
    `base_stage`). Returns x [B, 3, 256, 256]."""
    image, known = _on(model, patches, UPSAMPLE_SIZE)
    return (yield from upsample(model, request.prompt, low_res, seeds,
                                request.upsample_respacing, request.upsample_sampler,
                                request.upsample_temp, preview_settings(request),
                                denoised_fn=inpaint_denoised_fn(image, known),
                                generators=generators, start=Start(image, strength),
                                image_inputs=_rows(image, known, len(seeds), copies=1),
                                batched=batched))


def _on(model: torch.nn.Module, patches: Sequence[Patch], size: int) \
        -> tuple[torch.Tensor, torch.Tensor]:
    device = next(model.parameters()).device
    return (torch.cat([patch.image[size] for patch in patches]).to(device),
            torch.cat([patch.known[size] for patch in patches]).to(device))


def _rows(image: torch.Tensor, known: torch.Tensor, count: int, copies: int) \
        -> list[dict[str, torch.Tensor]]:
    """Each of `count` images' model inputs from one shared patch row or one row each."""
    return [inpaint_model_inputs(image[i % len(image)][None], known[i % len(known)][None],
                                 copies) for i in range(count)]


def image_record(image: Image.Image) -> dict[str, Any]:
    """What identifies an input picture in a recipe (the pixels themselves are not stored)."""
    return {"image_size": list(image.size),
            "image_sha256": hashlib.sha256(np.asarray(image).tobytes()).hexdigest()}


def input_record(image: Image.Image, mask: np.ndarray) -> dict[str, Any]:
    """What identifies the inputs in a recipe: the picture's record and the painted mask's
    fingerprint."""
    return {**image_record(image),
            "mask_sha256": hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()}
