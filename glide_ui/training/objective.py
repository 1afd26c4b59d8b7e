"""GLIDE's training objective: the hybrid loss of improved DDPM (Nichol & Dhariwal 2021,
arXiv:2102.09672), which the official checkpoints were trained with.

loss = L_simple + L_vlb:
- L_simple: the mean squared error of the predicted eps against the noise drawn;
- L_vlb: the variational-bound term for the learned variance, KL(q(x_{t-1}|x_t,x_0) ||
  p(x_{t-1}|x_t)) in bits per dimension (at t = 0 the decoder's negative log-likelihood),
  with a stop-gradient on the predicted eps, so the mean learns from L_simple alone and
  the variance from L_vlb. The paper's lambda = 0.001 on the bound summed over the T =
  1000 steps is weight T / 1000 = 1 on the one-step term.
The model's mean and variance come from `Diffusion.p_mean_variance`, the samplers' own
arithmetic, per example (each has its own timestep).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from glide_ui.glide.diffusion import Diffusion

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class Losses:
    total: Tensor  # scalar: mean over the batch of mse + vb
    mse: Tensor  # [B]
    vb: Tensor  # [B]


def normal_kl(mean1: Tensor, logvar1: Tensor | float, mean2: Tensor,
              logvar2: Tensor | float) -> Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats."""
    logvar1, logvar2 = torch.as_tensor(logvar1), torch.as_tensor(logvar2)
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """log p(x) of 8-bit levels x in [-1, 1] under a Gaussian discretised to bins of 2/255
    (the outer bins open to infinity), elementwise, in nats."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min,
                                   torch.log(cdf_delta.clamp(min=1e-12))))


def vb_term(diffusion: Diffusion, output: Tensor, x_start: Tensor, x_t: Tensor,
            i: int) -> Tensor:
    """The bound's term at respaced index i for one example [1, ...], in bits/dim."""
    out = diffusion.p_mean_variance(output, x_t, i, clip_denoised=False)
    if i == 0:
        nll = -discretized_gaussian_log_likelihood(x_start, out.mean, 0.5 * out.log_variance)
        return nll.mean() / _LOG2
    true_mean = diffusion.posterior_mean(x_start, x_t, i)
    true_logvar = diffusion.coef("posterior_log_variance_clipped", i)
    return normal_kl(true_mean, true_logvar, out.mean, out.log_variance).mean() / _LOG2


def hybrid_loss(diffusion: Diffusion, output: Tensor, x_start: Tensor, x_t: Tensor,
                noise: Tensor, indices: list[int]) -> Losses:
    """The hybrid loss of a batch: `output` the model's [B, 6, H, W] on x_t at respaced
    indices `indices`, x_t = q_sample(x_start, i, noise)."""
    output = output.float()
    channels = x_start.shape[1]
    eps, values = output[:, :channels], output[:, channels:]
    mse = ((eps - noise) ** 2).flatten(1).mean(1)
    frozen = torch.cat([eps.detach(), values], dim=1)  # the bound trains the variance only
    weight = diffusion.num_timesteps / 1000.0
    vb = torch.stack([vb_term(diffusion, frozen[j:j + 1], x_start[j:j + 1], x_t[j:j + 1], i)
                      for j, i in enumerate(indices)]) * weight
    return Losses(total=(mse + vb).mean(), mse=mse, vb=vb)
