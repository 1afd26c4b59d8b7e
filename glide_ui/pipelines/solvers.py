"""Modern ODE/SDE solvers from diffusers' scheduler classes, driven by GLIDE's models.

The schedulers are configured from the model's own beta schedule (`trained_betas`, the
1000 training steps of glide.diffusion.beta_schedule) and read epsilon predictions. A
GLIDE model outputs [eps | v]; the solvers use only eps, after the x0 prediction it
implies has been through `denoised_fn` (inpainting pastes the known region there) and
clamped to [-1, 1] as the reference samplers do: eps is re-derived from that x0, so the
solver steps from exactly the prediction the ancestral/DDIM samplers would use.

Noise (initial and, for the SDE solvers, per step) comes from the per-image generators:
diffusers' `randn_tensor` draws row b from `generators[b]`, so one image of a batch
reproduces alone. A step yields like glide.samplers (`SamplerStep`), so pipelines treat
solvers and the reference samplers alike.

Sources: DPM-Solver++ (Lu et al. 2022, arXiv:2211.01095), UniPC (Zhao et al. 2023,
arXiv:2302.04867), Euler ancestral and Heun as in Karras et al. 2022 (arXiv:2206.00364).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from glide_ui.glide.diffusion import DenoisedFn, beta_schedule, strength_steps
from glide_ui.glide.guidance import ModelFn
from glide_ui.glide.samplers import SamplerStep


@dataclass(frozen=True)
class Solver:
    """One named solver: its diffusers scheduler class and configuration."""

    label: str
    scheduler: str  # class name in diffusers
    config: tuple[tuple[str, Any], ...] = ()
    order: int = 1  # global order of accuracy of the deterministic ones
    stochastic: bool = False

    def make(self, noise_schedule: str, diffusion_steps: int = 1000) -> Any:
        import diffusers  # heavy import, only when a solver is used

        betas = beta_schedule(noise_schedule, diffusion_steps).numpy()
        cls = getattr(diffusers, self.scheduler)
        return cls(num_train_timesteps=diffusion_steps, trained_betas=betas,
                   prediction_type="epsilon", **dict(self.config))


SOLVERS: dict[str, Solver] = {
    "dpmpp_2m": Solver("DPM-Solver++ 2M", "DPMSolverMultistepScheduler",
                       (("algorithm_type", "dpmsolver++"), ("solver_order", 2)), order=2),
    "dpmpp_2m_sde": Solver("DPM-Solver++ 2M SDE", "DPMSolverMultistepScheduler",
                           (("algorithm_type", "sde-dpmsolver++"), ("solver_order", 2)),
                           order=1, stochastic=True),
    "unipc": Solver("UniPC", "UniPCMultistepScheduler", (("solver_order", 2),), order=2),
    "euler_a": Solver("Euler ancestral", "EulerAncestralDiscreteScheduler",
                      stochastic=True),
    "heun": Solver("Heun", "HeunDiscreteScheduler", order=2),
}


def train_sigmas(scheduler: Any) -> np.ndarray:
    """sqrt((1 - abar) / abar) at every training timestep (float64)."""
    abar = scheduler.alphas_cumprod.double().numpy()
    return np.sqrt((1 - abar) / abar)


def alpha_bar_at(sigmas: np.ndarray, t: float) -> float:
    """abar at a (possibly fractional) timestep, interpolating sigma linearly in t as
    diffusers' sigma-space schedulers do (exact at integer t)."""
    sigma = float(np.interp(t, np.arange(len(sigmas)), sigmas))
    return 1.0 / (1.0 + sigma * sigma)


def solve(name: str, noise_schedule: str, model_fn: ModelFn, noise: Tensor, steps: int,
          generators: Sequence[torch.Generator] | None = None, *,
          clip_denoised: bool = True, denoised_fn: DenoisedFn | None = None,
          diffusion_steps: int = 1000, x0: Tensor | None = None,
          strength: float = 1.0) -> Iterator[SamplerStep]:
    """Solve from x_T = `noise` [B, C, H, W] (unit variance, at the last training timestep)
    in `steps` solver steps; yields after every step, returns the final x.

    With `x0` [1 or B, C, H, W] and strength < 1, start part-way (SDEdit, as diffusers'
    img2img pipelines do): only the last `glide.diffusion.strength_steps` solver steps
    run, from x0 noised with `noise` by the scheduler's `add_noise` to the first of them
    (q_sample at that timestep, in the scheduler's own scaling; strength 0: no step, the
    sampler yields nothing).

    `model_fn(x_t, t)` gets the variance-preserving x_t and float timesteps [B] on the
    original 0..diffusion_steps-1 scale. Heun calls it twice per step but for the last.
    Raises KeyError for an unknown solver, ValueError without generators for a
    stochastic one.
    """
    solver = SOLVERS[name]
    if solver.stochastic and (generators is None or len(generators) != len(noise)):
        raise ValueError(f"{solver.label} needs one generator per image")
    scheduler = solver.make(noise_schedule, diffusion_steps)
    scheduler.set_timesteps(steps, device=noise.device)
    sigmas = train_sigmas(scheduler)
    eps_fn = _eps_fn(model_fn, sigmas, clip_denoised, denoised_fn)
    # sample lives in the scheduler's space: x_T * init_noise_sigma is VP x_T = noise
    sample, begin = noise.float() * scheduler.init_noise_sigma, 0
    if x0 is not None and strength < 1.0:
        count = strength_steps(strength, steps)
        begin = (steps - count) * scheduler.order
        scheduler.set_begin_index(begin)
        start = scheduler.timesteps[begin:begin + 1]
        sample = scheduler.add_noise(x0.float().expand_as(noise), noise.float(), start) \
            if count else x0.float().expand_as(noise)
        steps = count
    return _loop(scheduler, eps_fn, sample, generators, steps, solver.stochastic, begin)


def _eps_fn(model_fn: ModelFn, sigmas: np.ndarray, clip_denoised: bool,
            denoised_fn: DenoisedFn | None) -> Callable[[Tensor, float], tuple[Tensor, Tensor]]:
    """(eps for the solver, pred_x0) at VP x_t and timestep t."""
    def eps_fn(x_t: Tensor, t: float) -> tuple[Tensor, Tensor]:
        timesteps = torch.full((len(x_t),), t, dtype=torch.float32, device=x_t.device)
        with torch.no_grad():
            eps = model_fn(x_t, timesteps)[:, : x_t.shape[1]].float()
            abar = alpha_bar_at(sigmas, t)
            root, rootm1 = abar ** 0.5, (1 - abar) ** 0.5
            pred_x0 = (x_t - rootm1 * eps) / root
            if denoised_fn is None and not clip_denoised:
                return eps, pred_x0
            if denoised_fn is not None:
                pred_x0 = denoised_fn(pred_x0)
            if clip_denoised:
                pred_x0 = pred_x0.clamp(-1, 1)
            return (x_t - root * pred_x0) / rootm1, pred_x0

    return eps_fn


def _loop(scheduler: Any, eps_fn: Callable[[Tensor, float], tuple[Tensor, Tensor]],
          sample: Tensor, generators: Sequence[torch.Generator] | None,
          total: int, stochastic: bool, begin: int = 0) -> Iterator[SamplerStep]:
    extra = {"generator": list(generators)} if stochastic else {}
    k = 0
    timesteps = scheduler.timesteps[begin:]
    last = len(timesteps) - 1
    for entry, t in enumerate(timesteps):
        x_in = scheduler.scale_model_input(sample, t)
        eps, pred_x0 = eps_fn(x_in, float(t))
        with torch.no_grad():
            sample = scheduler.step(eps, t, sample, **extra).prev_sample
        if getattr(scheduler, "state_in_first_order", True) is False and entry < last:
            continue  # Heun's predictor: the step completes at the next timestep entry
        yield SamplerStep(step=k, total=total, respaced_index=total - 1 - k,
                          timestep=int(round(float(t))), x_t=sample, pred_x0=pred_x0)
        k += 1
    return sample
