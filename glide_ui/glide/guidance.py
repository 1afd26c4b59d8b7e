"""Model functions and guidance hooks that the samplers call.

A model function is `model_fn(x_t, t) -> [N, 6, H, W]` (eps | variance value v) for x_t
with N rows at ORIGINAL timesteps t (LongTensor [N]). A condition function is
`cond_fn(x_t, t, pred_xstart) -> gradient` of log p(y | x_t) with x_t's shape; the
samplers add it through the mean (ancestral) or the score (DDIM).

A condition function may set the attribute `wants_x0_graph = True`: the sampler then
evaluates the model with autograd on, from a leaf x_t that requires grad, so the
`pred_xstart` it receives is differentiable w.r.t. x_t (e.g. CLIP on the predicted image,
`torch.autograd.grad(loss(pred_xstart), x_t)`), at the cost of one backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from glide_ui.glide.diffusion import DenoisedFn

ModelFn = Callable[[Tensor, Tensor], Tensor]


class CondFn(Protocol):
    def __call__(self, x_t: Tensor, t: Tensor, pred_xstart: Tensor) -> Tensor: ...


def wants_x0_graph(cond_fn: CondFn | None) -> bool:
    """Whether `cond_fn` needs pred_xstart differentiable w.r.t. x_t."""
    return cond_fn is not None and bool(getattr(cond_fn, "wants_x0_graph", False))


# ---------------------------------------------------------------------------------------
# Classifier-free guidance


def _guided_eps(output: Tensor, guidance_scale: float) -> tuple[Tensor, Tensor]:
    """(guided eps [B], v [2B]) from a [2B, 6] output of rows [cond..., uncond...]."""
    channels = output.shape[1] // 2
    eps, var_values = output[:, :channels], output[:, channels:]
    cond_eps, uncond_eps = eps.split(len(eps) // 2)
    return uncond_eps + guidance_scale * (cond_eps - uncond_eps), var_values


def cfg_combine(output: Tensor, guidance_scale: float) -> Tensor:
    """The reference's 2B-row CFG layout: `cat([eps, eps])` with each half's own v.

    `output` is the model's [2B, 6] output on rows [cond..., uncond...] of the same x.
    """
    guided, var_values = _guided_eps(output, guidance_scale)
    return torch.cat([torch.cat([guided, guided]), var_values], dim=1)


def cfg_model_fn(model: nn.Module, guidance_scale: float, **model_kwargs: Any) -> ModelFn:
    """Classifier-free guidance over B images: one model call on 2B rows `cat([x, x])`.

    `model_kwargs` hold the 2B-row inputs in [cond..., uncond...] order: `text=` from
    `model.encode_text(tokens, mask)` (or tokens/mask), and inpainting inputs repeated
    over the two halves. Returns eps_u + s (eps_c - eps_u) with the conditional v.
    """
    def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
        output = model(torch.cat([x_t, x_t]), torch.cat([t, t]), **model_kwargs)
        guided, var_values = _guided_eps(output, guidance_scale)
        return torch.cat([guided, var_values[: len(x_t)]], dim=1)

    return model_fn


def conditional_model_fn(model: nn.Module, **model_kwargs: Any) -> ModelFn:
    """The model on its own, e.g. the upsampler with `low_res=` and `text=` (B rows)."""
    def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
        return model(x_t, t, **model_kwargs)

    return model_fn


# ---------------------------------------------------------------------------------------
# Inpainting


def inpaint_model_inputs(image: Tensor, mask: Tensor, copies: int = 1) -> dict[str, Tensor]:
    """`inpaint_image` (= image * mask) and `inpaint_mask` model inputs.

    `mask` [B, 1, H, W] is 1 where the image is known. `copies=2` repeats the rows for
    classifier-free guidance ([cond..., uncond...]).
    """
    return {"inpaint_image": (image * mask).repeat(copies, 1, 1, 1),
            "inpaint_mask": mask.repeat(copies, 1, 1, 1)}


def inpaint_denoised_fn(image: Tensor, mask: Tensor) -> DenoisedFn:
    """Paste the known region into every x0 prediction: x0 * (1 - mask) + image * mask."""
    known = image * mask
    keep = 1 - mask

    def denoised_fn(pred_xstart: Tensor) -> Tensor:
        return pred_xstart * keep + known

    return denoised_fn


# ---------------------------------------------------------------------------------------
# CLIP guidance


def noise_aware_clip_cond_fn(clip: Any, text_embeddings: Tensor, grad_scale: float) -> CondFn:
    """Guidance by the noise-aware CLIP: grad_scale * d/dx_t [logit_scale * <text, image(x_t, t)>].

    `clip` is a `glide.clip.NoiseAwareClip`; `text_embeddings` [B, n_embd] (or [1, n_embd])
    are its unit text embeddings, computed once. The image encoder sees the noisy x_t at
    the ORIGINAL timestep, so pred_xstart is not used.
    """
    def cond_fn(x_t: Tensor, t: Tensor, pred_xstart: Tensor) -> Tensor:
        return clip.cond_gradient(x_t, t, text_embeddings, grad_scale)

    return cond_fn
