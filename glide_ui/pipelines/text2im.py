"""Text to image: the base model with classifier-free guidance, then the upsampler, as the
reference text2im notebook does it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import torch
from PIL import Image
from torch import nn

from glide_ui.errors import RequestError
from glide_ui.glide.guidance import cfg_model_fn
from glide_ui.images import pil_to_tensor, tensor_to_pil
from glide_ui.pipelines.common import (
    PreviewSettings,
    StageEvents,
    Start,
    batches_images,
    begin,
    device_of,
    diffuse,
    image_generators,
    image_model_fn,
    loading_notices,
    make_recipes,
    prompt_notices,
    text_condition,
    upsample,
)
from glide_ui.pipelines.events import Event, Result
from glide_ui.pipelines.filmstrip import filmstrips
from glide_ui.pipelines.requests import Text2ImRequest, request_from_recipe
from glide_ui.recipe import Recipe


@filmstrips
def text2im(request: Text2ImRequest, manager: Any) -> Iterator[Event]:
    """Generate `request.batch_size` images of the prompt; see the module docstring."""
    request, seeds = yield from begin(request)
    yield from base_then_upsample("text2im", request, seeds, manager)


def base_then_upsample(pipeline: str, request: Any, seeds: Sequence[int], manager: Any,
                       x0: torch.Tensor | None = None, **record: Any) -> Iterator[Event]:
    """The guided base stage, then the upsampler, then the Result (its recipes of
    `pipeline`, with `record` added). With `x0` [1, 3, 64, 64] in [-1, 1], the base stage
    starts part-way from it at `request.strength` (SDEdit, see `common.Start`)."""
    names = ("base", "upsample") if request.upsample else ("base",)
    yield from prompt_notices(request.prompt, manager, names)
    yield from loading_notices(manager, names)
    together = batches_images(request, manager)
    with manager.use(*names) as models:
        start = None if x0 is None else Start(x0.to(device_of(models[0])), request.strength)
        x = yield from guided_base(models[0], request, seeds, start=start, batched=together)
        if request.upsample:
            x = yield from upsample(models[1], request.prompt, x, seeds,
                                    request.upsample_respacing, request.upsample_sampler,
                                    request.upsample_temp, preview_settings(request),
                                    batched=together)
    recipes = make_recipes(pipeline, request, seeds, manager, names, **record)
    yield Result(tensor_to_pil(x), recipes)


def guided_base(model: nn.Module, request: Any, seeds: Sequence[int],
                denoised_fn: Any = None, start: Start | None = None,
                generators: list[torch.Generator] | None = None,
                image_inputs: Sequence[dict[str, torch.Tensor]] | None = None,
                batched: bool = False, **inputs: torch.Tensor) -> StageEvents:
    """The 64 px base stage with classifier-free guidance. `inputs` (e.g. the inpainting
    image and mask) hold the two rows [cond, uncond] of one image, shared by the batch;
    `image_inputs` instead give each image its own. `generators` (default: fresh ones
    from the seeds) let a pipeline draw several stages' noise from one stream per image;
    `start` (SDEdit) as for `common.diffuse`; `batched` as for `common.image_model_fn`."""
    text = text_condition(model, request.prompt, guided=True,
                          negative_prompt=request.negative_prompt)
    rows = [{"text": text, **row} for row in image_inputs or [inputs] * len(seeds)]
    model_fn = image_model_fn(partial(cfg_model_fn, model, request.guidance_scale), rows,
                              batched, halves=2)
    return (yield from diffuse("base", model, model_fn, generators or image_generators(seeds),
                               request.base_respacing, request.sampler,
                               preview_settings(request), denoised_fn=denoised_fn,
                               start=start))


def preview_settings(request: Any) -> PreviewSettings:
    return PreviewSettings(request.preview_interval, request.preview_noisy,
                           request.filmstrip_frames)


@filmstrips
def upsample_picked(picks: Sequence[tuple[Image.Image, Recipe]], manager: Any,
                    **overrides: Any) -> Iterator[Event]:
    """Upsample base-only results the user picked, after the fact.

    `picks` are (64 px image, its recipe) pairs from runs with `upsample=False`, of one
    prompt and settings (several runs' picks are refused). The 8-bit image is exactly what
    the upsampler would have seen in one go (it quantizes the base sample to 8 bits), and
    its noise comes from the image's own seed, so each result is pixel-identical to the
    same seed and settings upsampled in one go, with the same recipe (where images are
    batched, `common.batches_images`, within what batching changes). `overrides` (e.g.
    preview_interval) go into the request. Raises RequestError for anything else.
    """
    if not picks:
        raise RequestError("Pick one or more base images to upsample.")
    requests = [request_from_recipe(recipe, **overrides) for _, recipe in picks]
    if any(recipe.pipeline != "text2im" for _, recipe in picks):
        raise RequestError("Only Generate (text to image) results can be upsampled later.")
    settings = {replace(r, seed=0, upsample=True) == replace(requests[0], seed=0, upsample=True)
                for r in requests}
    if settings != {True}:
        raise RequestError("The picked images come from different prompts or settings; "
                           "upsample them one run at a time.")
    if any(image.size != (64, 64) for image, _ in picks):
        raise RequestError("Upsample later takes the 64 px base images (a run with "
                           "'Upsample to 256 px' off).")
    seeds = [recipe.seed for _, recipe in picks]
    request, _ = yield from begin(replace(requests[0], upsample=True))
    yield from loading_notices(manager, ("upsample",))
    with manager.use("upsample") as (model,):
        x = yield from upsample(model, request.prompt, pil_to_tensor([i for i, _ in picks]),
                                seeds, request.upsample_respacing, request.upsample_sampler,
                                request.upsample_temp, preview_settings(request),
                                batched=batches_images(request, manager))
    yield Result(tensor_to_pil(x), make_recipes("text2im", request, seeds, manager,
                                                ("base", "upsample")))
