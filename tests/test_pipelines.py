"""The pipelines on the tiny models: events, determinism, cancellation, previews, recipes."""

import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch
from pipeline_runs import run

from glide_ui.errors import RequestError
from glide_ui.glide.samplers import SamplerStep
from glide_ui.images import png_bytes, read_recipe
from glide_ui.models import ModelManager
from glide_ui.pipelines.common import (
    UPSAMPLE_SEED_OFFSET,
    PreviewSettings,
    follow,
    image_generators,
)
from glide_ui.pipelines.events import Preview, Progress, Status
from glide_ui.pipelines.requests import MAX_SEED, Text2ImRequest, request_from_recipe
from glide_ui.pipelines.text2im import text2im
from glide_ui.recipe import Recipe

FAST = dict(base_respacing="4", upsample=False, preview_interval=3600)



def pixels(result, index=0):
    return np.asarray(result.images[index])


def stage_steps(events, kind, stage):
    return [e.step for e in events if isinstance(e, kind) and e.stage == stage]


def test_text2im_event_sequence_and_batch_invariance_through_the_upsampler():
    fresh = ModelManager(model_set="tiny", device="cpu")
    request = Text2ImRequest(prompt="a corgi", batch_size=2, seed=40, base_respacing="3",
                             upsample_respacing="2", preview_interval=0)
    events, result = run(text2im(request, fresh))
    assert [e.text for e in events if isinstance(e, Status)] == ["Loading base...",
                                                                 "Loading upsample..."]
    assert all(isinstance(e, Status) for e in events[:2])
    kinds = [type(e).__name__ for e in events[2:-1]]
    assert kinds == ["Progress", "Preview"] * 5
    assert stage_steps(events, Progress, "base") == [1, 2, 3]
    assert stage_steps(events, Progress, "upsample") == [1, 2]
    assert {e.total for e in events if isinstance(e, Progress) and e.stage == "base"} == {3}
    base_preview = next(e for e in events if isinstance(e, Preview))
    assert [im.size for im in base_preview.images] == [(64, 64)] * 2
    assert base_preview.noisy == []
    assert [im.size for im in result.images] == [(256, 256)] * 2
    assert [r.seed for r in result.recipes] == [40, 41]
    recipe = result.recipes[0]
    assert recipe.pipeline == "text2im" and recipe.prompt == "a corgi"
    assert recipe.settings["guidance_scale"] == 3.0 and recipe.settings["upsample_temp"] == 0.997
    assert recipe.models == {"base": "tiny-random-seed-0", "upsample": "tiny-random-seed-1"}
    assert all(entry.in_use == 0 for entry in fresh.status().loaded)
    # Warm models: no loading notice; image 1 of the batch is seed 41 run alone.
    events, alone = run(text2im(replace(request, batch_size=1, seed=41), fresh))
    assert not any(isinstance(e, Status) for e in events)
    assert np.array_equal(pixels(result, 1), pixels(alone))


def test_same_seed_same_image_and_global_rng_untouched(manager):
    request = Text2ImRequest(prompt="a red cube", seed=7, **FAST)
    manager.get("base")  # building a model may draw from the global RNG; running must not
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    _, first = run(text2im(request, manager))
    assert torch.equal(torch.random.get_rng_state(), state), "global RNG was used"
    torch.manual_seed(12345)
    torch.rand(100)
    _, second = run(text2im(request, manager))
    assert np.array_equal(pixels(first), pixels(second))
    _, other = run(text2im(replace(request, seed=8), manager))
    assert not np.array_equal(pixels(first), pixels(other))


def test_image_i_of_a_batch_equals_its_seed_alone(manager):
    request = Text2ImRequest(prompt="a corgi", batch_size=4, seed=100, sampler="ancestral",
                             **FAST)
    _, batch = run(text2im(request, manager))
    _, alone = run(text2im(replace(request, batch_size=1), manager))
    assert np.array_equal(pixels(batch, 0), pixels(alone))
    assert [recipe.seed for recipe in batch.recipes] == [100, 101, 102, 103]
    assert not np.array_equal(pixels(batch, 0), pixels(batch, 1))


def test_upsampler_noise_comes_from_seed_plus_offset():
    assert UPSAMPLE_SEED_OFFSET > MAX_SEED
    assert UPSAMPLE_SEED_OFFSET + MAX_SEED < 2**32  # torch keeps 32 bits of a CPU seed
    (base,), (up,) = image_generators([3]), image_generators([3], UPSAMPLE_SEED_OFFSET)
    up_noise = torch.randn(4, generator=up)
    assert not torch.equal(torch.randn(4, generator=base), up_noise)
    assert torch.equal(up_noise, torch.randn(4, generator=torch.Generator().manual_seed(3 + 2**31)))


def test_drawn_seeds_are_reported(manager):
    _, result = run(text2im(Text2ImRequest(prompt="x", seed=-1, batch_size=2, **FAST),
                            manager))
    first, second = (r.seed for r in result.recipes)
    assert 0 <= first <= MAX_SEED - 1 and second == first + 1


def cancel_after(events, stage, step):
    for event in events:
        if isinstance(event, Progress) and event.stage == stage and event.step == step:
            break
    events.close()


def test_cancel_mid_run_then_rerun_is_bit_identical(manager):
    request = Text2ImRequest(prompt="a lighthouse", seed=21, base_respacing="3",
                             upsample_respacing="2", upsample_sampler="ancestral",
                             preview_interval=0)
    _, fresh = run(text2im(request, manager))
    for stage, step in (("base", 2), ("upsample", 1)):
        events = text2im(request, manager)
        cancel_after(events, stage, step)
        assert all(entry.in_use == 0 for entry in manager.status().loaded)
        _, again = run(text2im(request, manager))
        assert np.array_equal(pixels(fresh), pixels(again)), f"after a stop in {stage}"


def test_closing_stops_within_one_step(manager):
    calls = []
    events = text2im(Text2ImRequest(prompt="x", seed=1, **FAST), manager)
    base = manager.get("base")
    handle = base.register_forward_hook(lambda *args: calls.append(1))
    try:
        cancel_after(events, "base", 2)
        assert len(calls) == 2
    finally:
        handle.remove()


def test_a_fresh_process_gives_the_same_image_as_a_rerun_after_stop(manager):
    request = Text2ImRequest(prompt="a lighthouse", seed=77, **FAST)
    events = text2im(request, manager)
    cancel_after(events, "base", 3)
    _, rerun = run(text2im(request, manager))
    script = textwrap.dedent("""
        import hashlib, numpy as np
        from glide_ui.models import ModelManager
        from glide_ui.pipelines.events import Result
        from glide_ui.pipelines.requests import Text2ImRequest
        from glide_ui.pipelines.text2im import text2im
        request = Text2ImRequest(prompt="a lighthouse", seed=77, base_respacing="4",
                                 upsample=False, preview_interval=3600)
        events = text2im(request, ModelManager(model_set="tiny", device="cpu"))
        result = [e for e in events if isinstance(e, Result)][0]
        print(hashlib.sha256(np.asarray(result.images[0]).tobytes()).hexdigest())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ".", "PATH": "/usr/bin:/bin",
                                          "OMP_NUM_THREADS": str(torch.get_num_threads())})
    import hashlib

    assert out.stdout.strip() == hashlib.sha256(pixels(rerun).tobytes()).hexdigest()


def test_preview_throttling_in_a_run(manager):
    request = Text2ImRequest(prompt="x", seed=3, base_respacing="5", upsample=False,
                             preview_interval=0)
    every, _ = run(text2im(request, manager))
    assert stage_steps(every, Preview, "base") == [1, 2, 3, 4, 5]
    rare, _ = run(text2im(replace(request, preview_interval=3600), manager))
    assert stage_steps(rare, Preview, "base") == [1, 5]
    assert stage_steps(rare, Progress, "base") == [1, 2, 3, 4, 5]


def fake_steps(total):
    for k in range(total):
        x = torch.full((1, 3, 2, 2), k / total)
        yield SamplerStep(step=k, total=total, respaced_index=total - 1 - k,
                          timestep=0, x_t=x, pred_x0=-x)


def test_previews_follow_the_wall_clock():
    times = iter([0.0, 0.1, 0.3, 0.55, 0.6, 1.0, 1.04, 1.1, 1.2])
    events = follow("base", fake_steps(9), PreviewSettings(interval=0.5),
                    clock=lambda: next(times))
    shown = []
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            final = stop.value
            break
        if isinstance(event, Preview):
            shown.append(event.step)
    # first step; 0.55 s and 1.1 s after the previous preview; the last step always.
    assert shown == [1, 4, 8, 9]
    assert torch.equal(final, torch.full((1, 3, 2, 2), 8 / 9))


def test_noisy_previews_when_asked(manager):
    events, _ = run(text2im(Text2ImRequest(prompt="x", seed=3, preview_noisy=True, **FAST),
                            manager))
    preview = next(e for e in events if isinstance(e, Preview))
    assert len(preview.noisy) == 1 and preview.noisy[0].size == (64, 64)


def test_prompt_notices(manager):
    long_prompt = "a very detailed painting of a corgi " * 30
    events, _ = run(text2im(Text2ImRequest(prompt=long_prompt, seed=1, **FAST), manager))
    warnings = [e for e in events if isinstance(e, Status) and e.level == "warning"]
    assert len(warnings) == 1 and "first 128" in warnings[0].text
    events, _ = run(text2im(Text2ImRequest(prompt="", seed=1, **FAST), manager))
    assert any("unconditional" in e.text for e in events if isinstance(e, Status))


@pytest.mark.parametrize("changes", [{"batch_size": 0}, {"guidance_scale": 99.0},
                                     {"base_respacing": "nope"}, {"seed": -5}])
def test_bad_requests_raise_before_any_work(manager, changes):
    with pytest.raises(RequestError):
        next(text2im(Text2ImRequest(prompt="x", **changes), manager))


def test_recipe_round_trips_through_png_and_reproduces_the_image(manager):
    request = Text2ImRequest(prompt="a corgi «été» 🐕", batch_size=2, seed=90,
                             sampler="ddim", **FAST)
    _, result = run(text2im(request, manager))
    recipe = read_recipe(png_bytes(result.images[1], result.recipes[1]))
    assert isinstance(recipe, Recipe) and recipe == result.recipes[1]
    again = request_from_recipe(recipe, preview_interval=3600)
    assert again.seed == 91 and again.batch_size == 1 and again.sampler == "ddim"
    _, replay = run(text2im(again, manager))
    assert np.array_equal(pixels(replay), pixels(result, 1))
