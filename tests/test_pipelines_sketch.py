"""Sketch edits and variations on the tiny models, and the part-way start (SDEdit) they
share: strength 0 keeps the input, 1 is the ordinary run, in between the change stays in
the painted region and follows the strokes; one image of a batch reproduces alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from pipeline_runs import run

from glide_ui.errors import RequestError
from glide_ui.glide import samplers
from glide_ui.glide.diffusion import create_diffusion, strength_steps
from glide_ui.images import distance_to_mask, grow_mask, paint_strokes, png_bytes, read_recipe
from glide_ui.pipelines import (
    InpaintRequest,
    SketchRequest,
    Text2ImRequest,
    VariationsRequest,
    inpaint,
    request_from_recipe,
    sketch,
    text2im,
    variations,
)
from glide_ui.pipelines.events import Progress, Status
from glide_ui.pipelines.variations import base_view
from glide_ui.ui.editor_values import editor_strokes

FAST = dict(base_respacing="4", upsample=False, preview_interval=3600)


def photo(width=160, height=120, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def strokes(width=160, height=120) -> Image.Image:
    """Two strokes, red and blue, on a transparent layer (the editor's brush)."""
    layer = np.zeros((height, width, 4), dtype=np.uint8)
    layer[30:50, 40:90] = (230, 40, 40, 255)
    layer[70:85, 95:140] = (30, 90, 220, 255)
    return Image.fromarray(layer, "RGBA")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def sketched(**changes) -> SketchRequest:
    return SketchRequest(**{"image": photo(), "strokes": strokes(), "prompt": "a kite",
                            "seed": 5, **FAST, **changes})


# --- the shared primitive ---------------------------------------------------------------------


def test_strength_picks_the_number_of_last_steps():
    assert [strength_steps(s, 10) for s in (0.0, 0.01, 0.25, 0.5, 0.99, 1.0)] == \
        [0, 1, 2, 5, 10, 10]
    with pytest.raises(ValueError, match="strength"):
        strength_steps(1.5, 10)


def test_q_sample_is_the_forward_process():
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "10")
    x0, noise = torch.rand(1, 3, 4, 4) * 2 - 1, torch.randn(1, 3, 4, 4)
    abar = float(diffusion.alphas_cumprod[6])
    expected = abar ** 0.5 * x0 + (1 - abar) ** 0.5 * noise
    assert torch.allclose(diffusion.q_sample(x0, 6, noise), expected, atol=1e-6)


def test_sdedit_start_runs_the_last_steps_from_noised_x0():
    diffusion = create_diffusion(1000, "squaredcos_cap_v2", "8")
    generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
    noise = samplers.initial_noise((2, 3, 4, 4), generators)
    x0 = torch.zeros(1, 3, 4, 4)
    assert samplers.sdedit_start(diffusion, noise, x0, 1.0) == (noise, 8)
    x, steps = samplers.sdedit_start(diffusion, noise, x0, 0.0)
    assert steps == 0 and torch.equal(x, torch.zeros(2, 3, 4, 4))
    x, steps = samplers.sdedit_start(diffusion, noise, x0, 0.5)
    assert steps == 4 and torch.equal(x, diffusion.q_sample(x0, 3, noise))

    def model_fn(x_t, t):
        return torch.zeros(len(x_t), 6, 4, 4)

    run_steps = list(samplers.ancestral(diffusion, model_fn, x, generators, steps=steps))
    assert [s.respaced_index for s in run_steps] == [3, 2, 1, 0]
    assert {s.total for s in run_steps} == {4}


# --- sketch -----------------------------------------------------------------------------------


def test_sketch_at_strength_0_is_the_picture_unchanged(manager):
    events, result = run(sketch(sketched(strength=0.0, batch_size=2), manager))
    painted, _ = paint_strokes(photo(), strokes())
    assert [pixels(image).tolist() for image in result.images] == [pixels(painted).tolist()] * 2
    assert not [e for e in events if isinstance(e, (Progress, Status))], "no model ran"
    assert [r.seed for r in result.recipes] == [5, 6]


def test_sketch_at_half_strength_changes_only_the_painted_region(manager):
    request = sketched(strength=0.5, mask_feather=6, upsample=True, upsample_respacing="4")
    events, result = run(sketch(request, manager))
    assert [e.total for e in events if isinstance(e, Progress) and e.step == 1] == [2, 2]
    painted, region = paint_strokes(photo(), strokes())
    before, after = pixels(painted), pixels(result.images[0])
    assert after.shape == before.shape
    band = distance_to_mask(grow_mask(region, 0), 6) < 6  # the region and its feather band
    assert np.array_equal(after[~band], before[~band])
    assert (after != before).any(axis=2)[region].mean() > 0.5, "the region is repainted"
    recipe = result.recipes[0]
    assert recipe.pipeline == "sketch" and recipe.settings["strength"] == 0.5
    assert "strokes" not in recipe.settings and len(recipe.settings["mask_sha256"]) == 64


def test_sketch_follows_the_strokes_more_at_lower_strength(manager):
    painted, region = paint_strokes(photo(), strokes())

    def distance(strength):
        _, result = run(sketch(sketched(strength=strength, base_respacing="10"), manager))
        return np.abs(pixels(result.images[0]) - pixels(painted))[region].mean()

    assert distance(0.3) < distance(1.0)


def test_sketch_at_strength_1_is_plain_inpainting_of_the_region(manager):
    _, sketch_result = run(sketch(sketched(strength=1.0, sampler="ddim"), manager))
    painted, region = paint_strokes(photo(), strokes())
    plain = InpaintRequest(image=painted, mask=region, prompt="a kite", seed=5,
                           sampler="ddim", **FAST)
    _, inpaint_result = run(inpaint(plain, manager))
    assert np.array_equal(pixels(sketch_result.images[0]), pixels(inpaint_result.images[0]))


def test_a_shrunk_sketch_repaints_the_shrunk_region_as_inpainting_does(manager):
    _, shrunk = run(sketch(sketched(strength=1.0, mask_grow=-4, mask_feather=0), manager))
    painted, region = paint_strokes(photo(), strokes())
    plain = InpaintRequest(image=painted, mask=region, prompt="a kite", seed=5, mask_grow=-4,
                           mask_feather=0, **FAST)
    _, inpainted = run(inpaint(plain, manager))
    after = pixels(shrunk.images[0])
    assert np.array_equal(after, pixels(inpainted.images[0]))
    inside = grow_mask(region, -4)
    assert np.array_equal(after[~inside], pixels(painted)[~inside]), "the rim stays as painted"
    assert (after != pixels(painted)).any(axis=2)[inside].mean() > 0.5


@pytest.mark.parametrize("sampler", ["ancestral", "dpmpp_2m", "heun"])
def test_one_sketch_of_a_batch_reproduces_alone_from_its_recipe(manager, sampler):
    _, batch = run(sketch(sketched(strength=0.6, batch_size=2, sampler=sampler), manager))
    recipe = read_recipe(png_bytes(batch.images[1], batch.recipes[1]))
    assert recipe.seed == 6
    painted, region = paint_strokes(photo(), strokes())
    again = request_from_recipe(recipe, image=painted, mask=strokes(), preview_interval=3600)
    _, alone = run(sketch(again, manager))
    assert np.array_equal(pixels(alone.images[0]), pixels(batch.images[1]))
    assert alone.recipes[0] == batch.recipes[1]


def test_a_composite_with_its_mask_is_the_same_sketch(manager):
    painted, region = paint_strokes(photo(), strokes())
    _, from_layer = run(sketch(sketched(strength=0.5), manager))
    _, from_mask = run(sketch(sketched(image=painted, strokes=None, mask=region, strength=0.5),
                              manager))
    assert np.array_equal(pixels(from_layer.images[0]), pixels(from_mask.images[0]))


def test_an_editor_value_gives_its_layers_as_strokes(manager):
    """The page reads its editor's value into layers (`ui.editor_values`); a request takes
    pictures only, and says so of an editor value handed to it as it is."""
    value = {"background": photo(), "layers": [strokes()], "composite": None}
    _, from_editor = run(sketch(sketched(strokes=editor_strokes(value)), manager))
    _, from_layer = run(sketch(sketched(), manager))
    assert np.array_equal(pixels(from_editor.images[0]), pixels(from_layer.images[0]))
    with pytest.raises(RequestError, match="a path or a file, not dict"):
        run(sketch(sketched(strokes=value), manager))


@pytest.mark.parametrize("changes, message", [
    ({"strength": 1.5}, "Strength must be between 0 and 1"),
    ({"strength": -0.1}, "Strength must be between 0 and 1"),
    ({"strength": "half"}, "Strength must be a number"),
    ({"strokes": Image.new("RGBA", (160, 120), (0, 0, 0, 0))}, "The sketch is empty"),
    ({"strokes": None}, "The sketch is empty"),
    ({"strokes": Image.new("RGBA", (80, 60), (0, 0, 0, 0))}, "strokes are 80 x 60"),
    ({"strokes": Image.new("RGBA", (160, 120), (9, 9, 9, 255))}, "transparent layer"),
    ({"mask": np.ones((120, 160), dtype=bool)}, "not both"),
    ({"image": None}, "Upload an image to sketch on"),
    ({"guidance_scale": -1.0}, "Guidance scale"),
    ({"mask_grow": -30}, "Shrinking the mask by 30 px leaves nothing"),
    ({"mask_grow": -1000}, "Mask grow"),
])
def test_bad_sketch_requests(manager, changes, message):
    with pytest.raises(RequestError, match=message):
        next(sketch(sketched(**changes), manager))


# --- variations -------------------------------------------------------------------------------


def test_variations_at_strength_0_keep_the_pictures_own_64px_version(manager):
    square = photo(96, 96, seed=3)
    request = VariationsRequest(square, "a cat", strength=0.0, seed=1, batch_size=2, **FAST)
    events, result = run(variations(request, manager))
    own = square.resize((64, 64), Image.Resampling.BICUBIC)
    assert pixels(base_view(square)).tolist() == pixels(own).tolist()
    assert [pixels(image).tolist() for image in result.images] == [pixels(own).tolist()] * 2
    assert not [e for e in events if isinstance(e, Progress)], "no base step at strength 0"
    assert result.recipes[0].settings["image_size"] == [96, 96]


def test_variations_keep_the_composition_and_one_reproduces_alone(manager):
    picture = photo(200, 120, seed=4)
    request = VariationsRequest(picture, "a cat", strength=0.5, seed=7, batch_size=2,
                                **{**FAST, "upsample": True, "upsample_respacing": "2"})
    events, batch = run(variations(request, manager))
    assert any("centre square" in e.text for e in events if isinstance(e, Status))
    assert [e.total for e in events if isinstance(e, Progress) and e.step == 1] == [2, 2]
    assert [image.size for image in batch.images] == [(256, 256)] * 2
    again = request_from_recipe(batch.recipes[1], image=picture, preview_interval=3600)
    _, alone = run(variations(again, manager))
    assert np.array_equal(pixels(alone.images[0]), pixels(batch.images[1]))


def test_variations_at_strength_1_are_text_to_image(manager):
    request = VariationsRequest(photo(), "a cat", strength=1.0, seed=2, **FAST)
    _, varied = run(variations(request, manager))
    _, made = run(text2im(Text2ImRequest("a cat", seed=2, **FAST), manager))
    assert np.array_equal(pixels(varied.images[0]), pixels(made.images[0]))


@pytest.mark.parametrize("changes, message", [
    ({"strength": 2}, "Strength must be between 0 and 1"),
    ({"image": None}, "Upload an image to make variations of"),
    ({"image": b"not a picture"}, "not an image"),
])
def test_bad_variations_requests(manager, changes, message):
    request = VariationsRequest(**{"image": photo(), "prompt": "x", **changes})
    with pytest.raises(RequestError, match=message):
        next(variations(request, manager))


def test_a_recipe_without_its_inputs_is_refused():
    from glide_ui.recipe import Recipe

    with pytest.raises(RequestError, match="variations recipe needs its image"):
        request_from_recipe(Recipe("variations", "x", 1, {}))
    with pytest.raises(RequestError, match="sketch recipe needs its image and mask"):
        request_from_recipe(Recipe("sketch", "x", 1, {}), image=photo())
