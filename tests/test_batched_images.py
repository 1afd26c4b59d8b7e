"""A request's images in one model call per step (CUDA's default, forced here on the CPU):
the noise of each image is its own seed's, bit for bit; one model call differs from the
image's call alone by the kernels' rounding only; `batch_images=False` (--no-batch) is
the per-image path, bit-identical to each seed alone."""

from __future__ import annotations

import dataclasses
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from glide_ui.compute import choose_path
from glide_ui.glide import samplers
from glide_ui.glide.guidance import cfg_model_fn, inpaint_model_inputs
from glide_ui.models import ModelManager
from glide_ui.pipelines.common import batches_images, image_model_fn, text_condition
from glide_ui.pipelines.inpaint import inpaint
from glide_ui.pipelines.requests import InpaintRequest, Text2ImRequest
from glide_ui.pipelines.text2im import text2im
from tests.pipeline_runs import run

STEPS = {"base_respacing": "4", "upsample_respacing": "2", "preview_interval": 3600.0}
BATCHED = "images batched in one model call"


def _manager(dtype: str = "fp32", batch: bool = True) -> ModelManager:
    manager = ModelManager(model_set="tiny", device="cpu", dtype=dtype)
    manager.path = choose_path("cpu", dtype, batch=batch)
    return manager


@pytest.fixture(scope="module")
def batching() -> ModelManager:
    return _manager()


def _pixels(result) -> list[np.ndarray]:
    return [np.asarray(image).astype(int) for image in result.images]


def _text2im(manager: ModelManager, seed: int, batch_size: int = 1, **settings):
    return run(text2im(Text2ImRequest(prompt="a corgi", seed=seed, batch_size=batch_size,
                                      **STEPS, **settings), manager))[1]


def test_the_cpu_path_batches_only_when_asked() -> None:
    assert not choose_path("cpu", "fp32").batch_images
    path = choose_path("cpu", "fp32", batch=True)
    assert path.batch_images and path.describe().endswith(BATCHED)
    assert not choose_path("cpu", "fp32").describe().endswith(BATCHED)
    manager = _manager()
    assert batches_images(Text2ImRequest(prompt="p"), manager)
    assert not batches_images(Text2ImRequest(prompt="p", batch_images=False), manager)
    assert not batches_images(Text2ImRequest(prompt="p"), _manager(batch=False))


class _Calls:
    """Counts the calls of a model's forward and the rows of each."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows: list[int] = []
        self._hook = model.register_forward_pre_hook(
            lambda module, args, kwargs: self.rows.append(len(args[0] if args else kwargs["x"])),
            with_kwargs=True)

    def close(self) -> None:
        self._hook.remove()


@pytest.mark.parametrize("batch_images", [True, False])
def test_one_model_call_per_step_for_the_whole_batch(batching, batch_images) -> None:
    base = batching.get("base")
    calls = _Calls(base)
    try:
        _text2im(batching, 5, batch_size=3, upsample=False, batch_images=batch_images)
    finally:
        calls.close()
    # Classifier-free guidance: two rows per image, 4 steps.
    assert calls.rows == ([6] * 4 if batch_images else [2] * 12)


def test_the_inpainting_pair_batches_its_per_image_inputs(batching) -> None:
    picture = Image.fromarray(np.full((64, 64, 3), 120, dtype=np.uint8))
    mask = np.zeros((64, 64), dtype=bool)
    mask[16:48, 16:48] = True
    models = [batching.get("base-inpaint"), batching.get("upsample-inpaint")]
    calls = [_Calls(model) for model in models]
    try:
        _, result = run(inpaint(InpaintRequest(image=picture, mask=mask, prompt="a ball",
                                               seed=2, batch_size=2, **STEPS), batching))
    finally:
        for call in calls:
            call.close()
    assert (calls[0].rows, calls[1].rows) == ([4] * 4, [2] * 2)
    assert result.recipes[0].settings["compute_path"].endswith(BATCHED)
    alone = run(inpaint(InpaintRequest(image=picture, mask=mask, prompt="a ball", seed=3,
                                       **STEPS), batching))[1]
    assert np.abs(_pixels(result)[1] - _pixels(alone)[0]).mean() <= 1.0  # as text2im's


def test_each_image_draws_its_own_seeds_noise_bit_for_bit(batching, monkeypatch) -> None:
    draws: list[torch.Tensor] = []
    draw = samplers.initial_noise

    def recorded(*args, **kwargs):
        draws.append(draw(*args, **kwargs))
        return draws[-1]

    monkeypatch.setattr(samplers, "initial_noise", recorded)
    _text2im(batching, 7, batch_size=3, sampler="ancestral", upsample_sampler="ancestral")
    batched = list(draws)
    for image in range(3):
        draws.clear()
        _text2im(batching, 7 + image, sampler="ancestral", upsample_sampler="ancestral")
        assert len(draws) == len(batched) == 4 + 2  # x_T, then z at every step but the last
        for together, alone in zip(batched, draws, strict=True):
            assert torch.equal(together[image:image + 1], alone)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_a_batched_model_call_differs_from_each_images_by_rounding_only(dtype) -> None:
    """Reordered sums: each output within a few dozen roundings of the compute dtype at
    the output's scale (a dot product of K terms summed in another order differs by at most
    about K roundings, typically sqrt(K)); guidance at scale s, u + s (c - u), multiplies a
    difference by up to 2s + 1. A wrong layout of the stacked rows is off by O(1)."""
    manager, scale = _manager(dtype), 3.0
    with manager.use("base-inpaint") as (model,), torch.inference_mode():
        text = text_condition(model, "a corgi", guided=True, negative_prompt="fog")
        noise = torch.Generator().manual_seed(0)
        x = torch.randn(4, 3, 64, 64, generator=noise)
        image = torch.rand(4, 3, 64, 64, generator=noise) * 2 - 1
        rows = [{"text": text, **inpaint_model_inputs(image[i:i + 1], (x[i:i + 1] > 0).float()
                                                      [:, :1], copies=2)} for i in range(4)]
        t = torch.tensor([999, 600, 300, 10])
        make = partial(cfg_model_fn, model, scale)
        alone = image_model_fn(make, rows, batched=False, halves=2)(x, t)
        together = image_model_fn(make, rows, batched=True, halves=2)(x, t)
    rounding = torch.finfo(manager.dtype).eps * alone.abs().max().item()
    difference = (together - alone).abs().max().item()
    assert difference <= 32 * (2 * scale + 1) * rounding, difference / rounding


def test_batched_images_stay_within_a_level_of_each_seed_alone(batching) -> None:
    """fp32: the rounding of one call (above) grows over the steps, but the pictures stay
    the same (measured on AVX-512: mean differences of 0.006-0.04 of an 8-bit level, a
    few pixels off by up to 36 levels, after 10 + 5 steps)."""
    result = _text2im(batching, 11, batch_size=3)
    per_image = _text2im(batching, 11, batch_size=3, batch_images=False)
    assert result.recipes[0].settings["compute_path"].endswith(BATCHED)
    assert not per_image.recipes[0].settings["compute_path"].endswith(BATCHED)
    for image, (together, each) in enumerate(zip(_pixels(result), _pixels(per_image),
                                                 strict=True)):
        alone = _pixels(_text2im(batching, 11 + image))[0]
        assert np.array_equal(each, alone)  # --no-batch: bit for bit
        assert np.abs(together - alone).mean() <= 1.0
    assert np.abs(_pixels(result)[0] - _pixels(result)[1]).mean() > 10  # seeds differ


def test_a_recipe_says_whether_its_image_was_made_batched(batching) -> None:
    recipe = _text2im(batching, 4, batch_size=2).recipes[1]
    assert recipe.seed == 5 and "batch_images" not in recipe.settings  # never recorded
    assert recipe.settings["compute_path"].endswith(BATCHED)
    alone = _text2im(batching, 5).recipes[0]  # its rerun: one image, one call
    assert not alone.settings["compute_path"].endswith(BATCHED)
    assert dataclasses.replace(alone, settings={}) == dataclasses.replace(recipe, settings={})
