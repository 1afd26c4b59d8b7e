"""Samples of a model being trained: fixed prompts and seeds, DDIM (deterministic), so
the pictures of one step compare with those of another and with the base model's.

The base models sample with classifier-free guidance; the upsamplers take the low-res of
the run's first pictures, the inpainting models those pictures with their centre erased.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glide_ui.glide import samplers
from glide_ui.glide.diffusion import create_diffusion
from glide_ui.glide.guidance import cfg_model_fn, conditional_model_fn
from glide_ui.pipelines.common import text_condition
from glide_ui.training.batches import LOW_RES


@dataclass(frozen=True)
class SampleSpec:
    prompt: str
    seed: int
    picture: Tensor | None  # [3, S, S]: what the upsampler / inpainting model starts from


def centre_mask(size: int) -> Tensor:
    """[1, 1, S, S], 0 over the centre half of each side (what the inpainting fills)."""
    mask = torch.ones(1, 1, size, size)
    mask[..., size // 4:3 * size // 4, size // 4:3 * size // 4] = 0
    return mask


def sample(model: nn.Module, spec: SampleSpec, steps: int, guidance_scale: float) -> Tensor:
    """One sample [1, 3, S, S] in [-1, 1] from `model` (left in the mode it was in)."""
    options = model.options
    size = options["image_size"]
    diffusion = create_diffusion(options["diffusion_steps"], options["noise_schedule"],
                                 str(steps))
    was_training = model.training
    model.eval()
    try:
        kwargs: dict[str, Tensor] = {}
        guided = not options["super_res"]
        if options["super_res"]:
            kwargs["low_res"] = F.interpolate(spec.picture[None], size=(LOW_RES, LOW_RES),
                                              mode="area")
        if options["inpaint"]:
            mask = centre_mask(size)
            copies = 2 if guided else 1
            kwargs["inpaint_image"] = (spec.picture[None] * mask).repeat(copies, 1, 1, 1)
            kwargs["inpaint_mask"] = mask.repeat(copies, 1, 1, 1)
        with torch.no_grad():
            text = text_condition(model, spec.prompt, guided)
            fn = (cfg_model_fn(model, guidance_scale, text=text, **kwargs) if guided
                  else conditional_model_fn(model, text=text, **kwargs))
            generator = torch.Generator().manual_seed(spec.seed)
            noise = samplers.initial_noise((1, 3, size, size), [generator])
            return samplers.final(samplers.ddim(diffusion, fn, noise))
    finally:
        model.train(was_training)
