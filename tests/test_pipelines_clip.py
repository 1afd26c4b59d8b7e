"""CLIP guidance, CLIP ranking, sweeps and the CFG-vs-CLIP comparison on the tiny models."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from pipeline_runs import run

from glide_ui.errors import RequestError
from glide_ui.images import pil_to_tensor
from glide_ui.models import ModelManager
from glide_ui.pipelines.clip_guided import as_openai_clip, clip_guided
from glide_ui.pipelines.events import Progress, Status
from glide_ui.pipelines.rank import best_first, rank, ranked
from glide_ui.pipelines.requests import ClipGuidedRequest, Text2ImRequest
from glide_ui.pipelines.sweep import MAX_SWEEP_VALUES, compare_guidance, sweep
from glide_ui.pipelines.text2im import text2im

QUICK = dict(base_respacing="3", upsample=False, preview_interval=3600)



def pixels(result, index=0):
    return np.asarray(result.images[index])


def test_noise_aware_clip_guidance_events_and_effect():
    fresh = ModelManager(model_set="tiny", device="cpu")
    request = ClipGuidedRequest(prompt="an oil painting of a corgi", seed=12, **QUICK)
    events, guided = run(clip_guided(request, fresh))
    assert [e.text for e in events if isinstance(e, Status)] == [
        "Loading base...", "Loading clip/image-enc...", "Loading clip/text-enc..."]
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3]
    assert guided.images[0].size == (64, 64)
    recipe = guided.recipes[0]
    assert recipe.pipeline == "clip_guided" and recipe.settings["clip_source"] == "glide"
    assert set(recipe.models) == {"base", "clip/image-enc", "clip/text-enc"}
    _, unguided = run(clip_guided(replace(request, clip_scale=0.0), fresh))
    assert not np.array_equal(pixels(guided), pixels(unguided))


def test_openai_clip_guidance_is_batch_invariant(manager):
    request = ClipGuidedRequest(prompt="a corgi", seed=30, batch_size=2, clip_source="openai",
                                clip_scale=20.0, **QUICK)
    events, batch = run(clip_guided(request, manager))
    assert batch.recipes[0].models.keys() == {"base", "ViT-B/32"}
    _, alone = run(clip_guided(replace(request, batch_size=1, seed=31), manager))
    assert np.array_equal(pixels(batch, 1), pixels(alone))
    _, unguided = run(clip_guided(replace(request, batch_size=1, seed=31, clip_scale=0.0),
                                  manager))
    assert not np.array_equal(pixels(alone), pixels(unguided))


def test_clip_guidance_needs_a_prompt_and_warns_about_long_ones(manager):
    with pytest.raises(RequestError, match="prompt"):
        next(clip_guided(ClipGuidedRequest(prompt="  "), manager))
    events, _ = run(clip_guided(ClipGuidedRequest(prompt="corgi " * 100, seed=1, **QUICK),
                                manager))
    warnings = [e.text for e in events if isinstance(e, Status) and e.level == "warning"]
    assert any("CLIP reads only the first 75" in text for text in warnings)


def test_rank_scores_each_image_by_clip_similarity(manager):
    _, result = run(text2im(Text2ImRequest(prompt="a corgi", batch_size=3, seed=4, **QUICK),
                            manager))
    scores = rank(result.images, "a corgi", manager)
    clip = as_openai_clip(manager.get("ViT-B/32"))
    with torch.no_grad():
        expected = [float(clip.similarity(pil_to_tensor(image), "a corgi")[0])
                    for image in result.images]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    ordered = best_first(result, scores)
    order = np.argsort(-np.asarray(scores), kind="stable")
    assert [r.seed for r in ordered.recipes] == [result.recipes[i].seed for i in order]
    assert all(np.array_equal(np.asarray(a), np.asarray(result.images[i]))
               for a, i in zip(ordered.images, order, strict=True))
    assert ordered.labels == [f"CLIP {scores[i]:.3f}" for i in order]


def test_ranked_wraps_any_pipeline(manager):
    request = Text2ImRequest(prompt="a corgi", batch_size=2, seed=4, **QUICK)
    _, plain = run(text2im(request, manager))
    events, result = run(ranked(text2im(request, manager), "a corgi", manager))
    assert sorted(r.seed for r in result.recipes) == [4, 5]
    assert all(label.startswith("CLIP ") for label in result.labels)
    scores = [float(label.split()[-1]) for label in result.labels]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(RequestError, match="prompt"):
        next(ranked(text2im(request, manager), "", manager))
    with pytest.raises(RequestError, match="CLIP model"):
        rank(plain.images, "x", manager, model="ViT-Z/99")


def test_sweep_shares_the_noise_and_returns_a_labelled_grid(manager):
    request = Text2ImRequest(prompt="a corgi", batch_size=2, seed=50, **QUICK)
    events, result = run(sweep(request, manager, "guidance_scale", [1.0, 4.0]))
    assert result.labels == ["guidance 1", "guidance 1", "guidance 4", "guidance 4"]
    assert [r.seed for r in result.recipes] == [50, 51, 50, 51]
    assert [r.settings["guidance_scale"] for r in result.recipes] == [1.0, 1.0, 4.0, 4.0]
    stages = {e.stage for e in events if isinstance(e, Progress)}
    assert stages == {"guidance 1 · base", "guidance 4 · base"}
    _, direct = run(text2im(replace(request, guidance_scale=4.0, batch_size=1, seed=51),
                            manager))
    assert np.array_equal(pixels(result, 3), pixels(direct))
    grid = result.grid
    assert grid is not None and grid.width > 2 * 64 and grid.height > 2 * 64


def test_sweep_draws_one_seed_for_all_runs(manager):
    _, result = run(sweep(Text2ImRequest(prompt="x", seed=-1, **QUICK), manager,
                          "guidance_scale", [2.0, 3.0]))
    assert len({r.seed for r in result.recipes}) == 1


@pytest.mark.parametrize("param, values, message", [
    ("sampler", [1.0], "Cannot sweep"),
    ("clip_scale", [1.0], "Cannot sweep"),
    ("guidance_scale", [], "values"),
    ("guidance_scale", [1.0] * (MAX_SWEEP_VALUES + 1), "values"),
    ("guidance_scale", [1.0, 50.0], "Guidance scale"),
    ("upsample_temp", [0.9, 1.0], "upsampler on"),
])
def test_bad_sweeps(manager, param, values, message):
    with pytest.raises(RequestError, match=message):
        list(sweep(Text2ImRequest(prompt="x", **QUICK), manager, param, values))


def test_compare_guidance_runs_cfg_and_clip_from_one_seed(manager):
    request = Text2ImRequest(prompt="a corgi", seed=-1, **QUICK)
    events, result = run(compare_guidance(request, manager, clip_scale=3.0))
    cfg, clip = result.recipes
    assert (cfg.pipeline, clip.pipeline) == ("text2im", "clip_guided")
    assert cfg.seed == clip.seed
    assert result.labels == ["classifier-free guidance", "CLIP guidance (glide)"]
    assert result.grid is not None
    _, alone = run(text2im(replace(request, seed=cfg.seed), manager))
    assert np.array_equal(pixels(result, 0), pixels(alone))
    with pytest.raises(RequestError):
        list(compare_guidance(replace(request, prompt=""), manager))
