"""The diffusers solvers: order of convergence to a 1000-step DDIM, seeds of the stochastic
ones, their ODE limit, inpainting's pasted prediction, and the pipelines with them."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from pipeline_runs import run

from glide_ui.errors import RequestError
from glide_ui.glide import samplers
from glide_ui.glide.diffusion import beta_schedule, create_diffusion
from glide_ui.glide.guidance import inpaint_denoised_fn
from glide_ui.pipelines import solvers
from glide_ui.pipelines.requests import (
    FAST_PRESET,
    ClipGuidedRequest,
    Text2ImRequest,
    request_from_recipe,
    validate,
)
from glide_ui.pipelines.text2im import text2im, upsample_picked

SCHEDULE = "squaredcos_cap_v2"
SHAPE = (3, 8, 8)
MU = 0.3 * torch.sin(torch.arange(8.0))  # the data mean, varying along the width
VAR = 0.25  # the data variance
SIGMAS = np.sqrt(1 / torch.cumprod(1 - beta_schedule(SCHEDULE, 1000), 0).numpy() - 1)


def _alpha_bar(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    values = [solvers.alpha_bar_at(SIGMAS, float(v)) for v in t]
    return torch.tensor(values, dtype=x.dtype).view(-1, 1, 1, 1)


def gaussian_model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The exact eps of data ~ N(MU, VAR) per pixel: its probability-flow ODE maps x_T to
    MU + sqrt(VAR) * x_T (up to abar_T), and the SDEs sample N(MU, VAR) too."""
    abar = _alpha_bar(x_t, t)
    x0 = MU + abar.sqrt() * VAR / (abar * VAR + 1 - abar) * (x_t - abar.sqrt() * MU)
    return _output(x_t, abar, x0)


def nonlinear_model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth, non-linear denoiser (exact at t = 0), so the ODE is not Gaussian's."""
    abar = _alpha_bar(x_t, t)
    x0 = MU + abar.sqrt() * VAR / (abar * VAR + 1 - abar) * (x_t - abar.sqrt() * MU)
    return _output(x_t, abar, x0 + 0.5 * (1 - abar) * torch.tanh(2 * x_t))


def _output(x_t: torch.Tensor, abar: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    eps = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()
    return torch.cat([eps, torch.zeros_like(eps)], dim=1)


def gens(seeds) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def noise_of(seeds) -> torch.Tensor:
    return samplers.initial_noise((len(seeds), *SHAPE), gens(seeds))


def solve(name, model_fn, seeds, steps, **kwargs) -> torch.Tensor:
    """x_T, then any step noise, from the images' generators (as the pipelines draw)."""
    generators = gens(seeds)
    noise = samplers.initial_noise((len(generators), *SHAPE), generators)
    return samplers.final(solvers.solve(name, SCHEDULE, model_fn, noise, steps, generators,
                                        **kwargs))


@pytest.fixture(scope="module")
def ddim_1000() -> torch.Tensor:
    diffusion = create_diffusion(1000, SCHEDULE, "")
    return samplers.final(samplers.ddim(diffusion, nonlinear_model_fn, noise_of([3]),
                                        clip_denoised=False))


# Step counts where the error is far above the 1000-step DDIM's own (about 3e-3 here).
ORDER_CASES = [("dpmpp_2m", (5, 10, 20)), ("unipc", (5, 10, 20)), ("heun", (20, 40, 80))]


@pytest.mark.parametrize(("name", "counts"), ORDER_CASES, ids=[c[0] for c in ORDER_CASES])
def test_deterministic_solver_converges_at_its_order(ddim_1000, name, counts) -> None:
    errors = [(solve(name, nonlinear_model_fn, [3], n, clip_denoised=False) - ddim_1000)
              .abs().max().item() for n in counts]
    slope = -np.polyfit(np.log(counts), np.log(errors), 1)[0]
    assert slope >= solvers.SOLVERS[name].order - 0.25, (errors, slope)
    assert errors[-1] < 0.05, errors


def test_solver_runs_are_reproducible_and_deterministic_ones_ignore_the_generators() -> None:
    for name in solvers.SOLVERS:
        first = solve(name, gaussian_model_fn, [4], 6)
        assert torch.equal(first, solve(name, gaussian_model_fn, [4], 6)), name
    steps = solvers.solve("unipc", SCHEDULE, gaussian_model_fn, noise_of([4]), 6, gens([9]))
    assert torch.equal(samplers.final(steps), solve("unipc", gaussian_model_fn, [4], 6))


@pytest.mark.parametrize("name", [n for n, s in solvers.SOLVERS.items() if s.stochastic])
def test_stochastic_solver_seeds_batch_invariance_and_ode_limit(name) -> None:
    batch = solve(name, gaussian_model_fn, range(10, 42), 30, clip_denoised=False)
    alone = solve(name, gaussian_model_fn, [11], 30, clip_denoised=False)
    assert torch.equal(batch[1:2], alone)
    # the step noise comes from the image's generator: same x_T, other step noise differs
    steps = solvers.solve(name, SCHEDULE, gaussian_model_fn, noise_of([11]), 30, gens([12]),
                          clip_denoised=False)
    assert not torch.equal(samplers.final(steps), alone)
    # ODE limit: the SDE samples the marginal N(MU, VAR) that the ODE maps x_T onto; the
    # ODE (exact here) to sampling error (6144 values: 0.01), the first-order SDE
    # schemes at 30 steps within their discretisation bias (Euler a: 13 % low in std)
    ode = solve("dpmpp_2m", gaussian_model_fn, range(10, 42), 30, clip_denoised=False)
    assert torch.allclose(ode, MU + math.sqrt(VAR) * noise_of(range(10, 42)), atol=0.01)
    for sample, tolerance in ((ode, 0.03), (batch, 0.15)):
        z = (sample - MU) / math.sqrt(VAR)
        assert abs(z.mean().item()) < 0.04 and abs(z.std().item() - 1) < tolerance, name


def test_stochastic_solver_needs_generators() -> None:
    with pytest.raises(ValueError, match="generator"):
        solvers.solve("euler_a", SCHEDULE, gaussian_model_fn, noise_of([1]), 4, None)


@pytest.mark.parametrize("name", list(solvers.SOLVERS))
def test_inpainting_pastes_the_known_region_into_every_prediction(name) -> None:
    image = torch.rand(1, *SHAPE) * 2 - 1
    known = torch.zeros(1, 1, 8, 8)
    known[..., :4] = 1
    steps = list(solvers.solve(name, SCHEDULE, gaussian_model_fn, noise_of([5]), 5, gens([5]),
                               denoised_fn=inpaint_denoised_fn(image, known)))
    assert len(steps) == 5 and [s.step for s in steps] == list(range(5))
    for step in steps:
        assert torch.allclose(step.pred_x0[..., :4], image[..., :4])
        assert step.pred_x0.abs().max() <= 1


# --- pipelines ------------------------------------------------------------------------------


def test_clip_guidance_refuses_solvers_with_a_clear_message() -> None:
    with pytest.raises(RequestError, match="ancestral and ddim"):
        validate(ClipGuidedRequest(prompt="a corgi", sampler="unipc"))
    validate(ClipGuidedRequest(prompt="a corgi", upsample_sampler="unipc"))


def test_text2im_with_solvers_batch_invariant_and_recipe_reproduces(manager) -> None:
    request = Text2ImRequest(prompt="a corgi", batch_size=2, seed=70, guidance_scale=3.0,
                             **{**FAST_PRESET, "base_respacing": "3",
                                "upsample_sampler": "dpmpp_2m_sde",
                                "upsample_respacing": "2"}, preview_interval=3600)
    events, batch = run(text2im(request, manager))
    recipe = batch.recipes[1]
    assert recipe.settings["sampler"] == "dpmpp_2m"
    assert recipe.settings["upsample_sampler"] == "dpmpp_2m_sde"
    replay = request_from_recipe(recipe, preview_interval=3600)
    _, alone = run(text2im(replay, manager))
    assert batch.images[1].size == (256, 256)
    assert np.array_equal(np.asarray(alone.images[0]), np.asarray(batch.images[1]))
    _, reference = run(text2im(replace(replay, sampler="ddim", upsample_sampler="ddim"),
                               manager))
    assert not np.array_equal(np.asarray(reference.images[0]), np.asarray(alone.images[0]))


# --- pick, then upsample ---------------------------------------------------------------------


def test_upsampling_picked_base_images_later_equals_one_go(manager) -> None:
    request = Text2ImRequest(prompt="a corgi", batch_size=2, seed=40, base_respacing="3",
                             upsample_respacing="2", preview_interval=3600)
    _, one_go = run(text2im(request, manager))
    _, base = run(text2im(replace(request, upsample=False), manager))
    assert base.images[0].size == (64, 64)
    picks = [(base.images[i], base.recipes[i]) for i in (1, 0)]
    _, later = run(upsample_picked(picks, manager, preview_interval=3600))
    for got, i in zip(range(2), (1, 0), strict=True):
        assert np.array_equal(np.asarray(later.images[got]), np.asarray(one_go.images[i]))
        assert later.recipes[got] == one_go.recipes[i]
    with pytest.raises(RequestError, match="different prompts or settings"):
        other = replace(base.recipes[0], prompt="a cat")
        list(upsample_picked([picks[0], (base.images[0], other)], manager))
    with pytest.raises(RequestError, match="64 px"):
        list(upsample_picked([(one_go.images[0], base.recipes[0])], manager))
