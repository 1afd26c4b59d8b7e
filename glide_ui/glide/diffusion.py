"""Gaussian diffusion arithmetic: beta schedules, respacing, posterior and the sampling steps.

Schedules are float64 tensors. Each coefficient is rounded to float32 (the reference casts
its float64 tables to float32 when it multiplies a tensor) and used as a Python scalar, so
tensors stay float32 and no device round trip happens per step. A respaced index `i`
(0..N-1) does all schedule arithmetic; `timestep_map[i]` is what networks are fed.

This module does not call any network: `p_mean_variance` takes a model's 6-channel output
(eps, variance value v), so every layout (CFG, upsampler, inpainting) reuses the same math.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

DenoisedFn = Callable[[Tensor], Tensor]

NOISE_SCHEDULES = ("squaredcos_cap_v2", "linear")
FAST_RESPACINGS = {"fast27": "10,10,3,2,2"}


# ---------------------------------------------------------------------------------------
# Schedules and respacing


def beta_schedule(name: str, steps: int) -> Tensor:
    """The float64 betas of a named noise schedule over `steps` diffusion steps."""
    if steps < 1:
        raise ValueError(f"the number of diffusion steps must be positive, got {steps}")
    if name == "linear":
        scale = 1000 / steps  # the 1e-4..0.02 range is defined for 1000 steps
        return _linspace(scale * 1e-4, scale * 0.02, steps)
    if name == "squaredcos_cap_v2":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999)
                 for i in range(steps)]
        return torch.tensor(betas, dtype=torch.float64)
    raise ValueError(f"unknown noise schedule {name!r}; expected one of {NOISE_SCHEDULES}")


def _linspace(start: float, stop: float, steps: int) -> Tensor:
    """float64 `start + k * step` with the exact `stop` last (numpy's rounding, which the
    reference tables use; torch.linspace rounds some entries differently)."""
    if steps == 1:
        return torch.tensor([start], dtype=torch.float64)
    values = torch.arange(steps, dtype=torch.float64) * ((stop - start) / (steps - 1)) + start
    values[-1] = stop
    return values


def space_timesteps(steps: int, spec: str) -> list[int]:
    """The ORIGINAL timesteps kept by a respacing spec, ascending.

    `""`: all steps. `"N"` / `"a,b,c"`: the steps cut into equal sections (the first
    `steps % k` one longer), each keeping `count` evenly spread steps. `"ddimN"`:
    `range(0, steps, stride)` for the smallest stride giving N steps. `"fast27"`:
    `"10,10,3,2,2"` with the last step replaced by `steps - 3`.
    """
    spec = spec.strip()
    if spec == "":
        return list(range(steps))
    if spec.startswith("ddim"):
        return _ddim_timesteps(steps, _count(spec[len("ddim"):], spec))
    if spec.startswith("fast"):
        if spec not in FAST_RESPACINGS:
            raise ValueError(f"unknown respacing {spec!r}; the fast forms are "
                             f"{sorted(FAST_RESPACINGS)}")
        kept = set(space_timesteps(steps, FAST_RESPACINGS[spec]))
        # Like the reference: avoid the noisiest step, whose DDIM update adds artifacts.
        kept.discard(steps - 1)
        kept.add(steps - 3)
        return sorted(kept)
    counts = [_count(part, spec) for part in spec.split(",")]
    return _section_timesteps(steps, counts, spec)


def _count(text: str, spec: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"invalid respacing {spec!r}: expected '', 'N', 'a,b,c', "
                         f"'ddimN' or one of {sorted(FAST_RESPACINGS)}") from None
    if count < 1:
        raise ValueError(f"invalid respacing {spec!r}: step counts must be positive")
    return count


def _ddim_timesteps(steps: int, count: int) -> list[int]:
    for stride in range(1, steps):
        kept = range(0, steps, stride)
        if len(kept) == count:
            return list(kept)
    raise ValueError(f"respacing 'ddim{count}': no integer stride gives exactly {count} "
                     f"of {steps} steps")


def _section_timesteps(steps: int, counts: list[int], spec: str) -> list[int]:
    size_per, extra = divmod(steps, len(counts))
    kept: list[int] = []
    start = 0
    for section, count in enumerate(counts):
        size = size_per + (1 if section < extra else 0)
        if count > size:
            raise ValueError(f"invalid respacing {spec!r}: section {section} has {size} steps, "
                             f"cannot keep {count}")
        stride = (size - 1) / (count - 1) if count > 1 else 1.0
        position = 0.0  # accumulated in float64 like the reference; round() is half-to-even
        for _ in range(count):
            kept.append(start + round(position))
            position += stride
        start += size
    return kept


def strength_steps(strength: float, total: int) -> int:
    """How many of `total` sampling steps a run started part-way takes (SDEdit, Meng et al.
    2021, arXiv:2108.01073): round(strength * total), at least 1 when strength > 0.

    strength 0 takes none (the input is the result), 1 takes all (from pure noise).
    Raises ValueError outside [0, 1].
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if strength == 0.0:
        return 0
    return min(total, max(1, round(strength * total)))


def respaced_betas(alphas_cumprod: Tensor, kept: list[int]) -> Tensor:
    """Betas of the chain that jumps between the kept timesteps (float64)."""
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[kept][:-1]])
    return 1 - alphas_cumprod[kept] / previous


def create_diffusion(steps: int, noise_schedule: str, timestep_respacing: str) -> Diffusion:
    """The (respaced) diffusion of a model trained with `steps` steps of `noise_schedule`."""
    betas = beta_schedule(noise_schedule, steps)
    kept = space_timesteps(steps, timestep_respacing)
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    return Diffusion(respaced_betas(alphas_cumprod, kept), torch.tensor(kept, dtype=torch.int64))


# ---------------------------------------------------------------------------------------
# Posterior and steps


@dataclass(frozen=True)
class MeanVariance:
    """p(x_{i-1} | x_i) of one step: Gaussian mean / variance, and the x_0 prediction."""

    mean: Tensor
    variance: Tensor
    log_variance: Tensor
    pred_xstart: Tensor


class Diffusion:
    """A (respaced) Gaussian diffusion: float64 tables and the float32 step arithmetic."""

    def __init__(self, betas: Tensor, timestep_map: Tensor) -> None:
        if betas.dtype != torch.float64 or betas.ndim != 1:
            raise ValueError("betas must be a 1-D float64 tensor")
        if timestep_map.shape != betas.shape:
            raise ValueError("timestep_map must have one entry per beta")
        self.betas = betas
        self.timestep_map = timestep_map
        self.num_timesteps = len(betas)

        one = torch.ones(1, dtype=torch.float64)
        abar = torch.cumprod(1 - betas, dim=0)
        abar_prev = torch.cat([one, abar[:-1]])
        self.alphas_cumprod = abar
        self.alphas_cumprod_prev = abar_prev
        self.sqrt_alphas_cumprod = torch.sqrt(abar)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(1 - abar)
        self.sqrt_recip_alphas_cumprod = torch.sqrt(1 / abar)
        self.sqrt_recipm1_alphas_cumprod = torch.sqrt(1 / abar - 1)
        self.posterior_variance = betas * (1 - abar_prev) / (1 - abar)
        # The posterior variance is 0 at i = 0: its log is taken from i = 1 there.
        clipped = torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        self.posterior_log_variance_clipped = torch.log(clipped)
        self.posterior_mean_coef1 = betas * torch.sqrt(abar_prev) / (1 - abar)
        self.posterior_mean_coef2 = (1 - abar_prev) * torch.sqrt(1 - betas) / (1 - abar)
        self.log_betas = torch.log(betas)
        self._f32_tables: dict[str, list[float]] = {}

    def coef(self, name: str, i: int) -> float:
        """Table `name` at respaced index i, as the float32 value that multiplies tensors."""
        table = self._f32_tables.get(name)
        if table is None:
            table = self._f32_tables[name] = getattr(self, name).float().tolist()
        return table[i]

    def timestep(self, i: int) -> int:
        """The original timestep (fed to networks) of respaced index i."""
        return int(self.timestep_map[i])

    def q_sample(self, x_start: Tensor, i: int, noise: Tensor) -> Tensor:
        """A draw of x_i ~ q(x_i | x_0) = N(sqrt(abar_i) x_0, (1 - abar_i) I), the forward
        process (Ho et al. 2020, eq. 4): sqrt(abar_i) * x_start + sqrt(1 - abar_i) * noise.
        `noise` is standard normal of x_start's shape (or one it broadcasts to)."""
        return (self.coef("sqrt_alphas_cumprod", i) * x_start
                + self.coef("sqrt_one_minus_alphas_cumprod", i) * noise)

    def predict_xstart_from_eps(self, x_t: Tensor, i: int, eps: Tensor) -> Tensor:
        return (self.coef("sqrt_recip_alphas_cumprod", i) * x_t
                - self.coef("sqrt_recipm1_alphas_cumprod", i) * eps)

    def predict_eps_from_xstart(self, x_t: Tensor, i: int, pred_xstart: Tensor) -> Tensor:
        return ((self.coef("sqrt_recip_alphas_cumprod", i) * x_t - pred_xstart)
                / self.coef("sqrt_recipm1_alphas_cumprod", i))

    def posterior_mean(self, x_start: Tensor, x_t: Tensor, i: int) -> Tensor:
        """Mean of q(x_{i-1} | x_i, x_0)."""
        return (self.coef("posterior_mean_coef1", i) * x_start
                + self.coef("posterior_mean_coef2", i) * x_t)

    def p_mean_variance(self, model_output: Tensor, x_t: Tensor, i: int,
                        clip_denoised: bool = True,
                        denoised_fn: DenoisedFn | None = None) -> MeanVariance:
        """Mean/variance of p(x_{i-1} | x_i) from a model's [N, 6, H, W] output (eps, v).

        The log variance interpolates log(beta_i) and the clipped log posterior variance
        by f = (v + 1) / 2. `denoised_fn` (e.g. pasting a known region) sees the x_0
        prediction before it is clamped to [-1, 1].
        """
        channels = x_t.shape[1]
        eps, var_values = model_output[:, :channels], model_output[:, channels:]
        frac = (var_values + 1) / 2
        log_variance = (frac * self.coef("log_betas", i)
                        + (1 - frac) * self.coef("posterior_log_variance_clipped", i))
        pred_xstart = self.predict_xstart_from_eps(x_t, i, eps)
        if denoised_fn is not None:
            pred_xstart = denoised_fn(pred_xstart)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        return MeanVariance(mean=self.posterior_mean(pred_xstart, x_t, i),
                            variance=torch.exp(log_variance), log_variance=log_variance,
                            pred_xstart=pred_xstart)

    def condition_mean(self, out: MeanVariance, gradient: Tensor) -> MeanVariance:
        """Guidance through the mean (ancestral sampling): mean + variance * gradient."""
        return replace(out, mean=out.mean.float() + out.variance * gradient.float())

    def condition_score(self, out: MeanVariance, x_t: Tensor, i: int,
                        gradient: Tensor) -> MeanVariance:
        """Guidance through the score (DDIM): eps - sqrt(1 - abar_i) * gradient.

        pred_xstart and the mean are recomputed from the guided eps (not clamped again).
        """
        eps = self.predict_eps_from_xstart(x_t, i, out.pred_xstart)
        abar, _ = self._f32_pair(i)
        eps = eps - float(torch.sqrt(1 - abar)) * gradient
        pred_xstart = self.predict_xstart_from_eps(x_t, i, eps)
        return replace(out, pred_xstart=pred_xstart,
                       mean=self.posterior_mean(pred_xstart, x_t, i))

    def ancestral_sample(self, out: MeanVariance, i: int, noise: Tensor | None) -> Tensor:
        """x_{i-1} = mean + exp(log_variance / 2) * noise; just the mean at i = 0."""
        if i == 0:
            return out.mean
        if noise is None:
            raise ValueError("ancestral steps above index 0 need noise")
        return out.mean + torch.exp(0.5 * out.log_variance) * noise

    def ddim_sigma(self, i: int, eta: float) -> float:
        """The DDIM noise scale at i (0 for eta = 0), computed in float32."""
        abar, abar_prev = self._f32_pair(i)
        sigma = (eta * torch.sqrt((1 - abar_prev) / (1 - abar))
                 * torch.sqrt(1 - abar / abar_prev))
        return float(sigma)

    def ddim_sample(self, out: MeanVariance, x_t: Tensor, i: int, eta: float = 0.0,
                    noise: Tensor | None = None) -> Tensor:
        """The DDIM update, with eps re-derived from the (clamped) x_0 prediction."""
        abar, abar_prev = self._f32_pair(i)
        sigma = torch.tensor(self.ddim_sigma(i, eta), dtype=torch.float32)
        eps = self.predict_eps_from_xstart(x_t, i, out.pred_xstart)
        x_prev = (out.pred_xstart * float(torch.sqrt(abar_prev))
                  + float(torch.sqrt(1 - abar_prev - sigma**2)) * eps)
        if i == 0 or float(sigma) == 0.0:
            return x_prev
        if noise is None:
            raise ValueError("DDIM steps with eta > 0 need noise")
        return x_prev + float(sigma) * noise

    def _f32_pair(self, i: int) -> tuple[Tensor, Tensor]:
        """abar_i and abar_{i-1} as float32 scalars (the reference does DDIM math in float32)."""
        return (torch.tensor(self.coef("alphas_cumprod", i), dtype=torch.float32),
                torch.tensor(self.coef("alphas_cumprod_prev", i), dtype=torch.float32))
