"""Ancestral and DDIM sampling as generators that yield after every step.

Randomness is per image: row b of every noise tensor comes from `generators[b]`, drawn on
that generator's device (CPU generators) and then moved to the sample's device, so an
image's trajectory depends only on its own seed, whatever the batch size. Autograd state
is set per step and never held across a `yield`, so closing a generator early leaves
nothing behind.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from glide_ui.glide.diffusion import Diffusion, MeanVariance, strength_steps
from glide_ui.glide.guidance import CondFn, DenoisedFn, ModelFn, wants_x0_graph


@dataclass(frozen=True)
class SamplerStep:
    """What a sampler yields after a step (step counts 0..total-1 in sampling order)."""

    step: int
    total: int
    respaced_index: int
    timestep: int  # the original timestep the model saw
    x_t: Tensor  # the new sample x_{i-1}; after the last step, the final image
    pred_x0: Tensor


@dataclass(frozen=True)
class StepDetail:
    """Everything one step computed (for tests and diagnostics)."""

    out: MeanVariance  # from the model output, before guidance
    gradient: Tensor | None  # cond_fn's gradient, None without cond_fn
    guided: MeanVariance  # what the update used (= out without cond_fn)
    sample: Tensor


def initial_noise(shape: Sequence[int], generators: Sequence[torch.Generator],
                  device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal noise of `shape` whose row b is drawn from `generators[b]`."""
    if len(generators) != shape[0]:
        raise ValueError(f"need one generator per row: {shape[0]} rows, "
                         f"{len(generators)} generators")
    rows = [torch.randn(tuple(shape[1:]), generator=g, device=g.device) for g in generators]
    return torch.stack(rows).to(device=device, dtype=dtype)


def sdedit_start(diffusion: Diffusion, noise: Tensor, x0: Tensor,
                 strength: float) -> tuple[Tensor, int]:
    """Where a run that keeps `x0`'s layout starts (text-conditional SDEdit, Meng et al.
    2021, arXiv:2108.01073): (x_t, the number of last steps to run).

    `noise` [B, C, H, W] is the run's initial noise (row b from image b's generator, as
    `initial_noise` draws it), `x0` [1 or B, C, H, W] in [-1, 1]. strength 1 gives the
    ordinary run (x_T = noise, every step; x0 unused); strength 0 gives x0 itself and no
    step; in between, x0 noised by `q_sample` to respaced index n - 1 for the n =
    `strength_steps` last steps. Raises ValueError for a strength outside [0, 1].
    """
    steps = strength_steps(strength, diffusion.num_timesteps)
    if strength == 1.0:
        return noise, steps
    if steps == 0:
        return x0.expand_as(noise).clone(), 0
    return diffusion.q_sample(x0, steps - 1, noise), steps


def _evaluate(diffusion: Diffusion, model_fn: ModelFn, x_t: Tensor, i: int,
              clip_denoised: bool, denoised_fn: DenoisedFn | None,
              cond_fn: CondFn | None) -> tuple[MeanVariance, Tensor | None]:
    """The model's posterior at respaced index i, and cond_fn's gradient (if any)."""
    t = torch.full((len(x_t),), diffusion.timestep(i), dtype=torch.long, device=x_t.device)
    graph = wants_x0_graph(cond_fn)
    with torch.set_grad_enabled(graph):
        x_in = x_t.detach().requires_grad_() if graph else x_t
        out = diffusion.p_mean_variance(model_fn(x_in, t), x_in, i, clip_denoised, denoised_fn)
        if cond_fn is None:
            return out, None
        with torch.enable_grad():
            gradient = cond_fn(x_in, t, out.pred_xstart).detach()
    if graph:
        out = MeanVariance(*(v.detach() for v in (out.mean, out.variance, out.log_variance,
                                                  out.pred_xstart)))
    return out, gradient


def ancestral_step(diffusion: Diffusion, model_fn: ModelFn, x_t: Tensor, i: int,
                   noise: Tensor | None, *, clip_denoised: bool = True,
                   denoised_fn: DenoisedFn | None = None,
                   cond_fn: CondFn | None = None) -> StepDetail:
    """One step of p(x_{i-1} | x_i); `cond_fn` shifts the mean by variance * gradient."""
    out, gradient = _evaluate(diffusion, model_fn, x_t, i, clip_denoised, denoised_fn, cond_fn)
    with torch.no_grad():
        guided = out if gradient is None else diffusion.condition_mean(out, gradient)
        sample = diffusion.ancestral_sample(guided, i, noise)
    return StepDetail(out, gradient, guided, sample)


def ddim_step(diffusion: Diffusion, model_fn: ModelFn, x_t: Tensor, i: int,
              noise: Tensor | None = None, *, eta: float = 0.0, clip_denoised: bool = True,
              denoised_fn: DenoisedFn | None = None,
              cond_fn: CondFn | None = None) -> StepDetail:
    """One DDIM step; `cond_fn` shifts the score (eps) by -sqrt(1 - abar_i) * gradient."""
    out, gradient = _evaluate(diffusion, model_fn, x_t, i, clip_denoised, denoised_fn, cond_fn)
    with torch.no_grad():
        guided = out if gradient is None else diffusion.condition_score(out, x_t, i, gradient)
        sample = diffusion.ddim_sample(guided, x_t, i, eta, noise)
    return StepDetail(out, gradient, guided, sample)


def _loop(diffusion: Diffusion, noise: Tensor, step: Callable[[Tensor, int], StepDetail],
          steps: int | None = None) -> Iterator[SamplerStep]:
    x = noise
    total = diffusion.num_timesteps if steps is None else steps
    if not 0 <= total <= diffusion.num_timesteps:
        raise ValueError(f"cannot run {total} of {diffusion.num_timesteps} steps")
    for k, i in enumerate(range(total - 1, -1, -1)):
        detail = step(x, i)
        x = detail.sample
        yield SamplerStep(step=k, total=total, respaced_index=i,
                          timestep=diffusion.timestep(i), x_t=x,
                          pred_x0=detail.guided.pred_xstart)
    return x


def _check_generators(noise: Tensor, generators: Sequence[torch.Generator] | None) -> None:
    if generators is None or len(generators) != len(noise):
        have = "none" if generators is None else len(generators)
        raise ValueError(f"need one generator per image: {len(noise)} images, {have} given")


def ancestral(diffusion: Diffusion, model_fn: ModelFn, noise: Tensor,
              generators: Sequence[torch.Generator], *, clip_denoised: bool = True,
              denoised_fn: DenoisedFn | None = None, cond_fn: CondFn | None = None,
              steps: int | None = None) -> Iterator[SamplerStep]:
    """Ancestral sampling from x_T = `noise`; yields after every step, returns the final x.
    With `steps`, only the last `steps` steps run, `noise` being x_t at respaced index
    steps - 1 (see `sdedit_start`)."""
    _check_generators(noise, generators)

    def step(x: Tensor, i: int) -> StepDetail:
        z = initial_noise(x.shape, generators, x.device, x.dtype) if i > 0 else None
        return ancestral_step(diffusion, model_fn, x, i, z, clip_denoised=clip_denoised,
                              denoised_fn=denoised_fn, cond_fn=cond_fn)

    return _loop(diffusion, noise, step, steps)


def ddim(diffusion: Diffusion, model_fn: ModelFn, noise: Tensor,
         generators: Sequence[torch.Generator] | None = None, *, eta: float = 0.0,
         clip_denoised: bool = True, denoised_fn: DenoisedFn | None = None,
         cond_fn: CondFn | None = None, steps: int | None = None) -> Iterator[SamplerStep]:
    """DDIM sampling from x_T = `noise` (deterministic at eta = 0, where `generators` may
    be None); yields after every step, returns the final x. `steps` as for `ancestral`."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if eta > 0:
        _check_generators(noise, generators)

    def step(x: Tensor, i: int) -> StepDetail:
        draw = eta > 0 and i > 0
        z = initial_noise(x.shape, generators, x.device, x.dtype) if draw else None
        return ddim_step(diffusion, model_fn, x, i, z, eta=eta, clip_denoised=clip_denoised,
                         denoised_fn=denoised_fn, cond_fn=cond_fn)

    return _loop(diffusion, noise, step, steps)


def final(steps: Iterator[SamplerStep]) -> Tensor:
    """Run a sampler to the end and return its final sample."""
    tail = deque(steps, maxlen=1)
    if not tail:
        raise ValueError("the sampler yielded no step")
    return tail[0].x_t

