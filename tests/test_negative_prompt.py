"""The negative prompt: classifier-free guidance's unconditional row conditioned on it
instead of the empty caption, in every guided job; empty gives today's pixels (the
fixtures of 3d0f738 rerun to theirs in test_recipes_3d0f738), and it is recorded only
when given, so recipes made before it rerun to the same recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from app_server import running_app
from gradio_client import Client
from PIL import Image

from glide_ui import Glide
from glide_ui.errors import RequestError
from glide_ui.images import read_recipe
from glide_ui.pipelines.common import text_condition
from glide_ui.settings import GUIDED
from glide_ui.ui.settings import restore_plan

FAST = dict(base_respacing="3", upsample=False, seed=5)


@pytest.fixture(scope="module")
def glide(manager) -> Glide:
    return Glide(manager=manager, progress=False)


def pixels(output) -> np.ndarray:
    return np.asarray(output.images[0], dtype=np.int16)


def photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), np.uint8))


def mask() -> np.ndarray:
    region = np.zeros((48, 48), dtype=bool)
    region[10:30, 12:36] = True
    return region


def strokes() -> Image.Image:
    layer = np.zeros((48, 48, 4), dtype=np.uint8)
    layer[10:30, 12:36] = (255, 0, 0, 255)
    return Image.fromarray(layer, "RGBA")


def run(glide: Glide, job: str, **settings):
    if job == "text2im":
        return glide.text2im("a red fox", **FAST, **settings)
    if job == "inpaint":
        return glide.inpaint(photo(), mask(), "a red fox", **FAST, **settings)
    if job == "outpaint":
        return glide.outpaint(photo(), "a red fox", right=16, **FAST, **settings)
    if job == "sketch":
        return glide.sketch(photo(), strokes(), "a red fox", **FAST, **settings)
    return glide.variations(photo(), "a red fox", **FAST, **settings)


def test_the_unconditional_row_is_the_negative_prompts(manager):
    with manager.use("base") as (model,):
        plain = text_condition(model, "a fox", guided=True)
        empty = text_condition(model, "a fox", guided=True, negative_prompt="")
        negative = text_condition(model, "a fox", guided=True, negative_prompt="blurry")
        alone = text_condition(model, "blurry", guided=False)
    for name in ("emb", "xf_out"):
        assert torch.equal(getattr(plain, name), getattr(empty, name))
        # The conditional row stays the prompt's; the other is what "blurry" alone gives.
        assert torch.allclose(getattr(negative, name)[0], getattr(plain, name)[0], atol=1e-5)
        assert torch.allclose(getattr(negative, name)[1], getattr(alone, name)[0], atol=1e-5)
        assert not torch.equal(getattr(negative, name)[1], getattr(plain, name)[1])


@pytest.mark.parametrize("job", GUIDED)
def test_every_guided_job_steers_away_from_it(glide, job):
    plain = run(glide, job)
    empty = run(glide, job, negative_prompt="")
    steered = run(glide, job, negative_prompt="a blue sky")
    assert np.array_equal(pixels(plain), pixels(empty))  # bit-identical to none
    assert not np.array_equal(pixels(plain), pixels(steered))
    assert "negative_prompt" not in empty.recipes[0].settings
    assert steered.recipes[0].settings["negative_prompt"] == "a blue sky"
    assert empty.recipes[0].settings == plain.recipes[0].settings


def test_a_recipe_with_a_negative_prompt_reruns_to_its_pixels(glide):
    made = run(glide, "text2im", negative_prompt="a blue sky")
    again = glide.rerun(made.recipes[0])
    assert np.array_equal(pixels(made), pixels(again))


def test_clip_guidance_has_no_negative_prompt(glide):
    with pytest.raises(RequestError, match="Unknown setting negative_prompt for clip_guided"):
        glide.clip_guided("a fox", negative_prompt="blurry", **FAST)


def test_a_negative_prompt_is_cleaned_like_the_prompt(glide):
    with pytest.warns(UserWarning, match="control character.*negative prompt"):
        run(glide, "text2im", negative_prompt="a blue\x07sky")
    with pytest.raises(RequestError, match="The negative prompt must be text"):
        run(glide, "text2im", negative_prompt=3)


def test_over_http_it_is_a_parameter_recorded_and_restored():
    with running_app() as app:
        client = Client(app.url, verbose=False)
        runs = {negative: client.predict(prompt="a red fox", seed=5, steps=3, upsample=False,
                                         negative_prompt=negative, api_name="/generate")
                for negative in ("", "a blue sky")}
    plain, steered = (read_recipe(runs[n][2][0]["image"]) for n in ("", "a blue sky"))
    assert "negative_prompt" not in plain.settings
    assert steered.settings["negative_prompt"] == "a blue sky"
    values, left = restore_plan(steered)
    assert left == [] and values["negative_prompt"] == "a blue sky"
    assert restore_plan(plain)[0]["negative_prompt"] == ""
