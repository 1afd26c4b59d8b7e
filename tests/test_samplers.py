"""Diffusion math, respacing, guidance model functions and the sampler generators."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from glide_ui.glide import guidance, samplers
from glide_ui.glide.diffusion import beta_schedule, create_diffusion, space_timesteps
from glide_ui.glide.options import tiny_options
from glide_ui.glide.unet import create_model

SHAPE = (3, 8, 8)


def fake_model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Row-independent stand-in for a UNet: eps and v are smooth functions of x and t."""
    scale = (1 + t.float() / 1000).view(-1, 1, 1, 1)
    return torch.cat([torch.tanh(x_t) * scale, torch.sin(3 * x_t)], dim=1)


ROUNDING_SPREAD = 4
"""How far apart two float32 summation orders of the same sums may land, in their largest
distance from the exact result: each is a sum of the same number of roundings, so their
maxima over a tensor differ by a small factor, not by orders of magnitude."""


def gens(seeds: range | list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def run(sampler, diffusion, seeds, model_fn=fake_model_fn, shape=SHAPE, **kwargs):
    generators = gens(seeds)
    noise = samplers.initial_noise((len(generators), *shape), generators)
    return list(sampler(diffusion, model_fn, noise, generators, **kwargs))


SAMPLERS = [pytest.param(samplers.ancestral, {}, id="ancestral"),
            pytest.param(samplers.ddim, {"eta": 0.7}, id="ddim-eta0.7"),
            pytest.param(samplers.ddim, {}, id="ddim-eta0")]


# --- respacing --------------------------------------------------------------------------------


def test_respacing_forms() -> None:
    assert space_timesteps(1000, "") == list(range(1000))
    assert space_timesteps(1000, "1000") == list(range(1000))
    assert space_timesteps(1000, "1") == [0]
    assert space_timesteps(1000, "1,1") == [0, 500]
    assert space_timesteps(1000, "ddim10") == list(range(0, 1000, 100))
    assert space_timesteps(1000, " 50 ") == space_timesteps(1000, "50")
    # one section of 10 steps keeping 3: positions 0, 4.5, 9 -> round half to even gives 4
    assert space_timesteps(10, "3") == [0, 4, 9]
    # sections differ in size: 10 = 4 + 3 + 3, starts 0, 4, 7
    assert space_timesteps(10, "2,2,2") == [0, 3, 4, 6, 7, 9]


def test_fast27_drops_the_noisiest_step() -> None:
    fast = space_timesteps(1000, "fast27")
    plain = space_timesteps(1000, "10,10,3,2,2")
    assert len(fast) == 27 and fast == sorted(fast)
    assert 999 in plain and 999 not in fast and fast[-1] == 997
    assert set(fast) - {997} == set(plain) - {999}


@pytest.mark.parametrize(("spec", "message"), [
    ("abc", "invalid respacing 'abc'"),
    ("ddim", "invalid respacing 'ddim'"),
    ("ddimx", "invalid respacing 'ddimx'"),
    ("0", "must be positive"),
    ("-5", "must be positive"),
    ("10,0", "must be positive"),
    ("10,,5", "invalid respacing"),
    ("1001", "cannot keep 1001"),
    ("600,600", "section 0 has 500 steps, cannot keep 600"),
    ("ddim400", "no integer stride gives exactly 400"),
    ("ddim1", "no integer stride gives exactly 1"),
    ("fast10", "unknown respacing 'fast10'"),
])
def test_invalid_respacing(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        space_timesteps(1000, spec)


def test_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="unknown noise schedule 'cosine'"):
        beta_schedule("cosine", 1000)
    with pytest.raises(ValueError, match="must be positive"):
        beta_schedule("linear", 0)


def test_create_diffusion_tables() -> None:
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "ddim25")
    assert diffusion.num_timesteps == 25
    assert diffusion.timestep_map.dtype == torch.int64
    assert diffusion.timestep_map.tolist() == list(range(0, 1000, 40))[:25]
    assert diffusion.betas.dtype == torch.float64
    # respacing keeps the cumulative products at the kept steps
    full = create_diffusion(1000, "squaredcos_cap_v2", "")
    kept = full.alphas_cumprod[diffusion.timestep_map]
    assert torch.allclose(diffusion.alphas_cumprod, kept, rtol=1e-12, atol=0)
    assert full.betas[-1] == 0.999  # the cap
    # the posterior variance is 0 at i = 0: its log comes from i = 1
    assert diffusion.posterior_variance[0] == 0
    lv = diffusion.posterior_log_variance_clipped
    assert lv[0] == lv[1] == math.log(diffusion.posterior_variance[1])


# --- posterior math ---------------------------------------------------------------------------


def test_pred_xstart_recovers_x0_from_the_true_noise() -> None:
    diffusion = create_diffusion(1000, "linear", "50")
    x0, eps = torch.rand(2, *SHAPE) * 1.8 - 0.9, torch.randn(2, *SHAPE)
    i = 30
    abar = diffusion.alphas_cumprod[i].item()
    x_t = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps
    out = diffusion.p_mean_variance(torch.cat([eps, torch.zeros_like(eps)], 1), x_t, i)
    torch.testing.assert_close(out.pred_xstart, x0, atol=1e-5, rtol=0)
    # DDIM at eta = 0 moves to the same x0 with the same noise, one step less noisy
    abar_prev = diffusion.alphas_cumprod_prev[i].item()
    expected = math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps
    torch.testing.assert_close(diffusion.ddim_sample(out, x_t, i), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("i", [0, 1, 7])
def test_variance_interpolates_log_beta_and_posterior(i: int) -> None:
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "10")
    x_t = torch.randn(1, *SHAPE)
    v = torch.tensor([-1.0, 1.0, 0.0]).view(1, 3, 1, 1).expand(1, *SHAPE)
    out = diffusion.p_mean_variance(torch.cat([torch.zeros_like(x_t), v], 1), x_t, i)
    low = diffusion.posterior_log_variance_clipped[i].item()
    high = math.log(diffusion.betas[i].item())
    got = out.log_variance[0, :, 0, 0].double()
    torch.testing.assert_close(got, torch.tensor([low, high, (low + high) / 2],
                                                 dtype=torch.float64), atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(out.variance, out.log_variance.exp())


def test_denoised_fn_sees_the_unclamped_prediction() -> None:
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "10")
    seen = []

    def denoised_fn(x0: torch.Tensor) -> torch.Tensor:
        seen.append(x0.abs().max().item())
        return x0 * 2

    x_t = torch.randn(1, *SHAPE) * 3
    out = diffusion.p_mean_variance(fake_model_fn(x_t, torch.tensor([900])), x_t, 9,
                                    denoised_fn=denoised_fn)
    assert seen[0] > 1  # called before the clamp...
    assert out.pred_xstart.abs().max() == 1  # ...which still applies to its result


def test_guidance_through_mean_and_score() -> None:
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "10")
    x_t = torch.randn(2, *SHAPE)
    out = diffusion.p_mean_variance(fake_model_fn(x_t, torch.tensor([500, 500])), x_t, 5,
                                    clip_denoised=False)
    gradient = torch.randn_like(x_t)
    guided = diffusion.condition_mean(out, gradient)
    torch.testing.assert_close(guided.mean, out.mean + out.variance * gradient)
    assert guided.pred_xstart is out.pred_xstart
    unchanged = diffusion.condition_score(out, x_t, 5, torch.zeros_like(x_t))
    torch.testing.assert_close(unchanged.pred_xstart, out.pred_xstart, atol=1e-5, rtol=1e-5)
    # the score shift moves eps by -sqrt(1 - abar) * gradient
    scored = diffusion.condition_score(out, x_t, 5, gradient)
    abar = diffusion.alphas_cumprod[5].item()
    shift = (scored.pred_xstart - out.pred_xstart) / math.sqrt(1 / abar - 1)
    torch.testing.assert_close(shift, math.sqrt(1 - abar) * gradient, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scored.mean, diffusion.posterior_mean(scored.pred_xstart, x_t, 5))


# --- samplers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("sampler", "kwargs"), SAMPLERS)
def test_yields_every_step_in_order(sampler, kwargs) -> None:
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "fast27")
    generators = gens([0, 1])
    noise = samplers.initial_noise((2, *SHAPE), generators)
    steps = sampler(diffusion, fake_model_fn, noise, generators, **kwargs)
    yielded = []
    while True:
        try:
            yielded.append(next(steps))
        except StopIteration as stop:
            returned = stop.value
            break
    assert [s.step for s in yielded] == list(range(27))
    assert {s.total for s in yielded} == {27}
    assert [s.respaced_index for s in yielded] == list(range(26, -1, -1))
    assert [s.timestep for s in yielded] == diffusion.timestep_map.flip(0).tolist()
    assert returned is yielded[-1].x_t
    assert all(s.x_t.shape == s.pred_x0.shape == noise.shape for s in yielded)


def test_initial_noise_rows_come_from_their_own_generator() -> None:
    noise = samplers.initial_noise((3, *SHAPE), gens([5, 6, 7]))
    for b, seed in enumerate([5, 6, 7]):
        alone = torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(noise[b], alone)
    with pytest.raises(ValueError, match="one generator per row"):
        samplers.initial_noise((2, *SHAPE), gens([1]))


@pytest.mark.parametrize(("sampler", "kwargs"), SAMPLERS)
def test_image_reproduces_alone_from_its_seed(sampler, kwargs) -> None:
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "20")
    batch = run(sampler, diffusion, range(40, 44), **kwargs)
    for b in (0, 2):
        alone = run(sampler, diffusion, [40 + b], **kwargs)
        for in_batch, single in zip(batch, alone, strict=True):
            assert torch.equal(in_batch.x_t[b], single.x_t[0])
            assert torch.equal(in_batch.pred_x0[b], single.pred_x0[0])


@pytest.mark.parametrize(("sampler", "kwargs"), SAMPLERS)
def test_closing_early_leaves_no_state(sampler, kwargs) -> None:
    diffusion = create_diffusion(1000, "linear", "15")
    reference = run(sampler, diffusion, [3, 4], **kwargs)[-1].x_t

    generators = gens([3, 4])
    noise = samplers.initial_noise((2, *SHAPE), generators)
    steps = sampler(diffusion, fake_model_fn, noise, generators, **kwargs)
    for _ in range(4):
        next(steps)
        assert torch.is_grad_enabled()  # no autograd mode is held across a yield
    steps.close()
    assert torch.is_grad_enabled()

    assert torch.equal(run(sampler, diffusion, [3, 4], **kwargs)[-1].x_t, reference)


def test_ddim_eta0_is_deterministic_and_ends_on_pred_x0() -> None:
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "ddim10")
    noise = torch.randn(2, *SHAPE)
    first = list(samplers.ddim(diffusion, fake_model_fn, noise))  # no generators needed
    second = list(samplers.ddim(diffusion, fake_model_fn, noise, gens([9, 9])))
    assert all(torch.equal(a.x_t, b.x_t) for a, b in zip(first, second, strict=True))
    assert torch.equal(first[-1].x_t, first[-1].pred_x0)  # abar_{-1} = 1


def test_ancestral_matches_ddim_eta1_with_posterior_variance() -> None:
    """With v = -1 (the posterior variance), DDIM at eta = 1 is the ancestral step.

    (Linear schedule: with the cosine one, abar_999 ~ 2e-9 and DDIM's float32
    1 - abar_prev - sigma^2 cancels badly, so the two agree only to ~1e-4 there.)"""
    def posterior_model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([fake_model_fn(x_t, t)[:, :3], -torch.ones_like(x_t)], dim=1)

    diffusion = create_diffusion(1000, "linear", "25")
    ancestral = run(samplers.ancestral, diffusion, [11, 12], posterior_model_fn)
    ddim = run(samplers.ddim, diffusion, [11, 12], posterior_model_fn, eta=1.0)
    for a, d in zip(ancestral, ddim, strict=True):
        torch.testing.assert_close(a.x_t, d.x_t, atol=1e-5, rtol=1e-5)
    ddim0 = run(samplers.ddim, diffusion, [11, 12], posterior_model_fn)
    assert (ddim0[-1].x_t - ddim[-1].x_t).abs().max() > 0.1  # eta matters


def test_sampler_argument_errors() -> None:
    diffusion = create_diffusion(1000, "linear", "5")
    noise = torch.randn(2, *SHAPE)
    with pytest.raises(ValueError, match="one generator per image: 2 images, 1 given"):
        samplers.ancestral(diffusion, fake_model_fn, noise, gens([1]))
    with pytest.raises(ValueError, match="2 images, none given"):
        samplers.ddim(diffusion, fake_model_fn, noise, eta=0.5)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        samplers.ddim(diffusion, fake_model_fn, noise, eta=-1.0)


def test_final_returns_the_last_sample() -> None:
    diffusion = create_diffusion(1000, "linear", "5")
    noise = torch.randn(1, *SHAPE)
    steps = list(samplers.ddim(diffusion, fake_model_fn, noise))
    assert torch.equal(samplers.final(samplers.ddim(diffusion, fake_model_fn, noise)),
                       steps[-1].x_t)


# --- condition functions ----------------------------------------------------------------------


@pytest.mark.parametrize("sampler", [samplers.ancestral, samplers.ddim])
def test_cond_fn_gets_original_timesteps_and_shifts_the_step(sampler) -> None:
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "10")
    calls = []

    def cond_fn(x_t, t, pred_xstart):
        calls.append(t.tolist())
        assert not pred_xstart.requires_grad
        return torch.ones_like(x_t)

    guided = run(sampler, diffusion, [1, 2], cond_fn=cond_fn)
    plain = run(sampler, diffusion, [1, 2])
    assert calls == [[t, t] for t in diffusion.timestep_map.flip(0).tolist()]
    assert guided[-1].x_t.sum() > plain[-1].x_t.sum()  # pushed along +gradient


def test_cond_fn_can_differentiate_through_pred_x0() -> None:
    """A `wants_x0_graph` cond_fn gets pred_xstart as a function of x_t (through the model)."""
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "10")
    a, i = 0.3, 6
    gradients = []

    def linear_model_fn(x_t, t):
        return torch.cat([a * x_t, torch.zeros_like(x_t)], dim=1)

    def cond_fn(x_t, t, pred_xstart):
        (grad,) = torch.autograd.grad(pred_xstart.sum(), x_t)
        gradients.append(grad)
        return grad

    cond_fn.wants_x0_graph = True
    x_t = torch.randn(1, *SHAPE) * 0.2
    detail = samplers.ddim_step(diffusion, linear_model_fn, x_t, i, cond_fn=cond_fn)
    slope = (diffusion.sqrt_recip_alphas_cumprod[i] - a * diffusion.sqrt_recipm1_alphas_cumprod[i])
    clamped = detail.out.pred_xstart.abs() == 1
    expected = torch.where(clamped, 0.0, slope.item())
    torch.testing.assert_close(gradients[0], expected)
    assert not detail.sample.requires_grad and not detail.out.mean.requires_grad


# --- guidance model functions -----------------------------------------------------------------


class RecordingModel(torch.nn.Module):
    """Returns rows that reveal which input row and which half they came from."""

    def forward(self, x, timesteps, **kwargs):
        self.seen = (x, timesteps, kwargs)
        half = len(x) // 2
        cond = torch.arange(len(x), dtype=torch.float32).view(-1, 1, 1, 1) < half
        eps = x + torch.where(cond, 1.0, -1.0)
        v = torch.where(cond, 0.25, -0.75).expand_as(x)
        return torch.cat([eps, v], dim=1)


def test_cfg_model_fn_runs_once_on_both_halves() -> None:
    model = RecordingModel()
    x, t = torch.randn(2, *SHAPE), torch.tensor([7, 7])
    out = guidance.cfg_model_fn(model, 3.0, text="T")(x, t)
    seen_x, seen_t, kwargs = model.seen
    assert torch.equal(seen_x, torch.cat([x, x])) and seen_t.tolist() == [7] * 4
    assert kwargs == {"text": "T"}
    # eps = eps_u + 3 (eps_c - eps_u) = (x - 1) + 3 * 2; v from the conditional half
    torch.testing.assert_close(out[:, :3], x + 5)
    assert torch.all(out[:, 3:] == 0.25)
    reference_layout = guidance.cfg_combine(model(torch.cat([x, x]), torch.cat([t, t])), 3.0)
    assert torch.equal(reference_layout[:2], out)
    assert torch.equal(reference_layout[2:, :3], out[:, :3])
    assert torch.all(reference_layout[2:, 3:] == -0.75)


def test_conditional_model_fn_passes_inputs() -> None:
    model = RecordingModel()
    x, t = torch.randn(1, *SHAPE), torch.tensor([3])
    guidance.conditional_model_fn(model, low_res="L")(x, t)
    assert model.seen[0] is x and model.seen[2] == {"low_res": "L"}


def test_inpainting_inputs_and_paste() -> None:
    image = torch.rand(2, *SHAPE) * 2 - 1
    mask = (torch.rand(2, 1, *SHAPE[1:]) > 0.5).float()
    inputs = guidance.inpaint_model_inputs(image, mask, copies=2)
    assert torch.equal(inputs["inpaint_image"], torch.cat([image * mask] * 2))
    assert torch.equal(inputs["inpaint_mask"], torch.cat([mask] * 2))
    x0 = torch.randn(2, *SHAPE)
    pasted = guidance.inpaint_denoised_fn(image, mask)(x0)
    known = mask.expand_as(x0).bool()
    assert torch.equal(pasted[known], image[known])
    assert torch.equal(pasted[~known], x0[~known])


# --- with a tiny UNet -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_base() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(tiny_options("base")).eval()
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised layers would hide the inputs
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _tiny_cfg_model_fn(model: torch.nn.Module, images: int, per_image: bool):
    """CFG over `images` images of one prompt, batched or one image per UNet call."""
    def text_of(n: int):
        tokens = torch.cat([torch.arange(1000, 1128).expand(n, -1), torch.full((n, 128), 50256)])
        mask = torch.arange(2 * n)[:, None].expand(-1, 128) < n  # [prompt] * n, [""] * n
        with torch.no_grad():
            return model.encode_text(tokens, mask)

    if not per_image:
        return guidance.cfg_model_fn(model, 3.0, text=text_of(images))
    one = guidance.cfg_model_fn(model, 3.0, text=text_of(1))
    return lambda x, t: torch.cat([one(x[b:b + 1], t[b:b + 1]) for b in range(len(x))])


@pytest.mark.parametrize(("sampler", "kwargs"), SAMPLERS[:2])
def test_tiny_unet_cfg_image_reproduces_alone(tiny_base, sampler, kwargs) -> None:
    """Bit-identical when the UNet sees one image per call. Batched calls are not: CPU
    GEMM and convolution kernels pick their blocking (summation order) by the batch size,
    and the sampler amplifies the rounding differences. Both orders round the same exact
    sums, so both trajectories stay as close to the float64 one (the UNet in float64) as
    float32 rounding allows: the batched one's largest distance from it is at most
    ROUNDING_SPREAD times the per-image one's, on any CPU and kernel."""
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "4")
    shape = (3, 64, 64)
    alone = run(sampler, diffusion, [20], _tiny_cfg_model_fn(tiny_base, 1, True), shape,
                **kwargs)
    per_image = run(sampler, diffusion, [20, 21, 22], _tiny_cfg_model_fn(tiny_base, 3, True),
                    shape, **kwargs)
    batched = run(sampler, diffusion, [20, 21, 22], _tiny_cfg_model_fn(tiny_base, 3, False),
                  shape, **kwargs)
    exact = run(sampler, diffusion, [20, 21, 22],
                _tiny_cfg_model_fn(copy.deepcopy(tiny_base).double(), 3, True), shape, **kwargs)
    for single, each in zip(alone, per_image, strict=True):
        assert torch.equal(each.x_t[0], single.x_t[0])
    each_err = (per_image[-1].x_t - exact[-1].x_t).abs().max().item()
    batch_err = (batched[-1].x_t - exact[-1].x_t).abs().max().item()
    assert 0 < batch_err <= ROUNDING_SPREAD * each_err, (
        f"{torch.backends.cpu.get_cpu_capability()} kernels: batched {batch_err:.2e}, "
        f"one image per call {each_err:.2e} from the float64 trajectory")
    assert (per_image[-1].x_t[0] - per_image[-1].x_t[1]).abs().max() > 0.1  # seeds differ
