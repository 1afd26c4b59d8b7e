"""CLIP-guided generation: the base model without classifier-free guidance, steered by the
gradient of a CLIP similarity, then the upsampler (as the reference clip_guided notebook).

Two guides: GLIDE's noise-aware CLIP, which scores the noisy x_t at its timestep
(`clip_source="glide"`, the reference), and OpenAI's CLIP, which scores the predicted
image x0 (differentiated through the model back to x_t, `clip_source="openai"`). Both
gradients are `clip_scale * d/dx_t [100 * cos(text, image)]`, so scales are comparable.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
from torch import nn

from glide_ui.glide.clip import NoiseAwareClip
from glide_ui.glide.clip_tokenizer import get_clip_tokenizer
from glide_ui.glide.guidance import CondFn, conditional_model_fn, noise_aware_clip_cond_fn
from glide_ui.images import tensor_to_pil
from glide_ui.openai_clip import OpenAIClip, require_clip_code
from glide_ui.pipelines.common import (
    batches_images,
    begin,
    diffuse,
    image_generators,
    image_model_fn,
    loading_notices,
    make_recipes,
    per_image_cond,
    prompt_notices,
    text_condition,
    upsample,
)
from glide_ui.pipelines.events import Event, Result, Status
from glide_ui.pipelines.filmstrip import filmstrips
from glide_ui.pipelines.requests import ClipGuidedRequest
from glide_ui.pipelines.text2im import preview_settings

NOISE_AWARE_CLIP = ("clip/image-enc", "clip/text-enc")
LOGIT_SCALE = 100.0  # the noise-aware CLIP's; used for OpenAI CLIP too


@filmstrips
def clip_guided(request: ClipGuidedRequest, manager: Any) -> Iterator[Event]:
    """Generate images of the prompt guided by CLIP; see the module docstring.

    Raises RequestError for a bad request and MissingPackageError without clip-anytorch,
    both before any work."""
    request, seeds = yield from begin(request)
    require_clip_code()
    glide_names = ("base", "upsample") if request.upsample else ("base",)
    clip_names = NOISE_AWARE_CLIP if request.clip_source == "glide" else \
        (request.openai_clip_model,)
    names = (glide_names[0], *clip_names, *glide_names[1:])
    yield from prompt_notices(request.prompt, manager, glide_names)
    yield from clip_prompt_notices(request.prompt)
    yield from loading_notices(manager, names)
    together = batches_images(request, manager)
    with manager.use(*names) as models:
        base, clip_models = models[0], models[1:1 + len(clip_names)]
        cond_fn = _cond_fn(request, manager, clip_models, together)
        text = text_condition(base, request.prompt, guided=False)
        model_fn = image_model_fn(partial(conditional_model_fn, base),
                                  [{"text": text}] * len(seeds), together)
        x = yield from diffuse("base", base, model_fn, image_generators(seeds),
                               request.base_respacing, request.sampler,
                               preview_settings(request), cond_fn=cond_fn)
        if request.upsample:
            x = yield from upsample(models[-1], request.prompt, x, seeds,
                                    request.upsample_respacing, request.upsample_sampler,
                                    request.upsample_temp, preview_settings(request),
                                    batched=together)
    yield Result(tensor_to_pil(x), make_recipes("clip_guided", request, seeds, manager, names))


def clip_prompt_notices(prompt: str) -> Iterator[Status]:
    """A warning when CLIP sees only the beginning of the prompt."""
    tokens = get_clip_tokenizer().tokenize(prompt)
    if tokens.truncated:
        yield Status(f"CLIP reads only the first {len(tokens.tokens) - 2} tokens of the "
                     f"prompt's {tokens.n_tokens}.", "warning")


def _cond_fn(request: ClipGuidedRequest, manager: Any, clip_models: tuple[nn.Module, ...],
             batched: bool) -> CondFn:
    if request.clip_source == "glide":
        logit_scale = manager.options(NOISE_AWARE_CLIP[0]).get("logit_scale", LOGIT_SCALE)
        clip = NoiseAwareClip(*clip_models, logit_scale=logit_scale)
        with torch.no_grad():
            text = clip.prompt_embeddings([request.prompt])
        cond_fn = noise_aware_clip_cond_fn(clip, text, request.clip_scale)
        return cond_fn if batched else per_image_cond(cond_fn)
    clip = as_openai_clip(clip_models[0])
    with torch.no_grad():
        text = clip.encode_text([request.prompt])[0]
    return openai_clip_cond_fn(clip, text, request.clip_scale, batched)


def as_openai_clip(model: nn.Module) -> OpenAIClip:
    """The manager's OpenAI CLIP model with tokenization and preprocessing."""
    return model if isinstance(model, OpenAIClip) else OpenAIClip(model)


def openai_clip_cond_fn(clip: OpenAIClip, text_embedding: torch.Tensor,
                        scale: float, batched: bool = False) -> CondFn:
    """scale * d/dx_t [100 * cos(text, CLIP(x0(x_t)))], x0 being the model's prediction.

    Each image is encoded alone (batch invariance, see `per_image`), or with `batched`
    all in one call; the sampler builds x0 with autograd on (`wants_x0_graph`).
    """
    def cond_fn(x_t: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor) -> torch.Tensor:
        groups = [pred_xstart] if batched else pred_xstart.split(1)
        similarity = sum((clip.encode_images(group) @ text_embedding).sum()
                         for group in groups)
        (gradient,) = torch.autograd.grad(LOGIT_SCALE * similarity, x_t)
        return gradient * scale

    cond_fn.wants_x0_graph = True  # type: ignore[attr-defined]
    return cond_fn
