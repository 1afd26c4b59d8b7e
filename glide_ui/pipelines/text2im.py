"""Text to image: the base model with classifier-free guidance, then the upsampler, as the
reference text2im notebook does it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from glide_ui.glide.guidance import cfg_model_fn
from glide_ui.images import tensor_to_pil
from glide_ui.pipelines.common import (
    PreviewSettings,
    StageEvents,
    begin,
    diffuse,
    image_generators,
    loading_notices,
    make_recipes,
    per_image,
    prompt_notices,
    text_condition,
    upsample,
)
from glide_ui.pipelines.events import Event, Result
from glide_ui.pipelines.requests import Text2ImRequest


def text2im(request: Text2ImRequest, manager: Any) -> Iterator[Event]:
    """Generate `request.batch_size` images of the prompt; see the module docstring."""
    request, seeds = yield from begin(request)
    names = ("base", "upsample") if request.upsample else ("base",)
    yield from prompt_notices(request.prompt, manager, names)
    yield from loading_notices(manager, names)
    with manager.use(*names) as models:
        x = yield from guided_base(models[0], request, seeds)
        if request.upsample:
            x = yield from upsample(models[1], request.prompt, x, seeds,
                                    request.upsample_respacing, request.upsample_sampler,
                                    request.upsample_temp, preview_settings(request))
    yield Result(tensor_to_pil(x), make_recipes("text2im", request, seeds, manager, names))


def guided_base(model: nn.Module, request: Any, seeds: Sequence[int],
                denoised_fn: Any = None, **inputs: torch.Tensor) -> StageEvents:
    """The 64 px base stage with classifier-free guidance. `inputs` (e.g. the inpainting
    image and mask) hold the two rows [cond, uncond] of one image, shared by the batch."""
    text = text_condition(model, request.prompt, guided=True)
    one_image = cfg_model_fn(model, request.guidance_scale, text=text, **inputs)
    model_fn = per_image([one_image] * len(seeds))
    return (yield from diffuse("base", model, model_fn, image_generators(seeds),
                               request.base_respacing, request.sampler,
                               preview_settings(request), denoised_fn=denoised_fn))


def preview_settings(request: Any) -> PreviewSettings:
    return PreviewSettings(request.preview_interval, request.preview_noisy)
