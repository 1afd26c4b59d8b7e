"""The Python API (glide_ui.Glide) on the tiny models: the same pixels as the page's HTTP API
for the same recipe, seeds and seed lists, previews, progress, recipes carried by the
images, ranking, sweeps, reruns, and bad values refused with the setting's name."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
from app_server import ASSETS
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from glide_ui import Glide, GlideOutput, RequestError, read_recipe
from glide_ui.images import PNG_PARAMETERS_KEY, PNG_RECIPE_KEY

FAST = dict(base_respacing=2, upsample=False)
PHOTO = ASSETS / "chelsea.png"
PHOTO_MASK = ASSETS / "masks" / "chelsea-eyes.png"


@pytest.fixture(scope="module")
def glide(manager) -> Glide:
    return Glide(manager=manager, progress=False)


@pytest.fixture(scope="module")
def client(app) -> Client:
    return Client(app.url, verbose=False)


def pixels(image) -> np.ndarray:
    with Image.open(image) if not isinstance(image, Image.Image) else image as opened:
        return np.asarray(opened.convert("RGB"))


def test_text2im_gives_the_pages_pixels_and_recipes(client, glide):
    result = client.predict(prompt="a corgi", batch_size=2, seed=7, guidance_scale=4.0,
                            steps=3, upsample=True, upsample_steps="2", api_name="/generate")
    page = [item["image"] for item in result[2]]
    out = glide.text2im("a corgi", seed=7, batch_size=2, guidance_scale=4.0,
                        base_respacing=3, upsample_respacing="2")
    assert isinstance(out, GlideOutput) and [image.size for image in out.images] == [(256, 256)] * 2
    for path, image, recipe in zip(page, out.images, out.recipes, strict=True):
        assert np.array_equal(pixels(path), pixels(image))
        assert read_recipe(path) == recipe
    again = glide.rerun(page[1])  # the page's PNG made again from its recipe
    assert np.array_equal(pixels(again.images[0]), pixels(out.images[1]))


def test_inpaint_gives_the_pages_pixels_from_pil_images_or_arrays(client, glide):
    editor = {"background": handle_file(str(PHOTO)), "layers": [handle_file(str(PHOTO_MASK))],
              "composite": None}
    result = client.predict(mask_editor=editor, prompt="round sunglasses", seed=4,
                            mask_feather=4, steps=2, upsample=False, api_name="/inpaint")
    page = pixels(result[5])
    settings = dict(seed=4, mask_feather=4, **FAST)
    with Image.open(PHOTO) as photo, Image.open(PHOTO_MASK) as mask:
        from_pil = glide.inpaint(photo, mask, "round sunglasses", **settings)
    mask_array = np.asarray(Image.open(PHOTO_MASK).getchannel("A")) > 0
    from_arrays = glide.inpaint(pixels(PHOTO), mask_array, "round sunglasses", **settings)
    assert np.array_equal(page, pixels(from_pil.images[0]))
    assert np.array_equal(page, pixels(from_arrays.images[0]))
    assert from_pil.images[0].size == Image.open(PHOTO).size
    assert read_recipe(result[2][0]["image"]) == from_pil.recipes[0]


def test_outpaint_gives_the_pages_pixels_and_reruns_from_its_png(client, glide):
    result = client.predict(image=handle_file(str(PHOTO)), prompt="a cat on a sofa",
                            right=128, seed=4, steps=2, upsample=False, api_name="/outpaint")
    page = pixels(result[4])
    assert page.shape == (300, 451 + 128, 3)
    assert np.array_equal(pixels(result[2][0]["image"]), page)
    out = glide.outpaint(PHOTO, "a cat on a sofa", right=128, seed=4, **FAST)
    assert np.array_equal(page, pixels(out.images[0]))
    assert read_recipe(result[4]) == out.recipes[0]
    with pytest.raises(RequestError, match="needs its image"):
        glide.rerun(result[4])
    again = glide.rerun(result[4], image=PHOTO)
    assert np.array_equal(pixels(again.images[0]), page)


def test_outpaint_over_http_refuses_a_ratio_with_sides_that_disagree(client):
    with pytest.raises(AppError, match="not both"):  # as the CLI and Python do
        client.predict(image=handle_file(str(PHOTO)), prompt="x", aspect_ratio="16:9",
                       right=64, steps=2, upsample=False, api_name="/outpaint")
    ratio = client.predict(image=handle_file(str(PHOTO)), prompt="x", aspect_ratio="16:9",
                           steps=2, upsample=False, api_name="/outpaint")
    assert pixels(ratio[4]).shape == (300, 533, 3)


def test_inpaint_shapes_and_invert_from_the_page_and_python(client, glide):
    shapes = "ellipse:140,90,330,170; rect:0,0,40,40"
    editor = {"background": handle_file(str(PHOTO)), "layers": [], "composite": None}
    result = client.predict(mask_editor=editor, prompt="x", seed=2, steps=2, upsample=False,
                            mask_shape=shapes, mask_invert=True, mask_grow=-3,
                            mask_feather=0, api_name="/inpaint")
    out = glide.inpaint(PHOTO, None, "x", seed=2, mask_shape=shapes, mask_invert=True,
                        mask_grow=-3, mask_feather=0, **FAST)
    assert np.array_equal(pixels(result[5]), pixels(out.images[0]))
    changed = (pixels(result[5]) != pixels(PHOTO)).any(axis=-1)
    assert not changed[150:170, 200:260].any(), "the kept ellipse changed"
    assert changed[250:, 400:].all(), "outside the shapes was not repainted"


def test_a_list_of_seeds_gives_each_seed_its_own_image(glide):
    batch = glide.text2im("a fox", seed=5, batch_size=2, **FAST)
    listed = glide.text2im("a fox", seed=[6, 11, 5], **FAST)
    assert [r.seed for r in batch.recipes] == [5, 6]
    assert [r.seed for r in listed.recipes] == [6, 11, 5]
    assert np.array_equal(pixels(listed.images[0]), pixels(batch.images[1]))
    assert np.array_equal(pixels(listed.images[2]), pixels(batch.images[0]))
    random = glide.text2im("a fox", **FAST)  # no seed: a drawn one, in the recipe
    assert 0 <= random.recipes[0].seed < 2**31
    ranked = glide.text2im("a fox", seed=[11, 5], rank=True, **FAST)  # two runs, one ranking
    assert {r.seed for r in ranked.recipes} == {11, 5} and len(ranked.labels) == 2
    assert ranked.labels == [f"CLIP {s:.3f}" for s in glide.rank(ranked.images, "a fox")]


def test_the_callback_gets_each_steps_preview(glide):
    seen = []
    glide.text2im("a fox", seed=1, batch_size=2, base_respacing=3, upsample=True,
                  upsample_respacing="2", callback=lambda p: seen.append(
                      (p.stage, p.step, p.total, [image.size for image in p.images])))
    assert seen == [("base", 1, 3, [(64, 64)] * 2), ("base", 2, 3, [(64, 64)] * 2),
                    ("base", 3, 3, [(64, 64)] * 2), ("upsample", 1, 2, [(256, 256)] * 2),
                    ("upsample", 2, 2, [(256, 256)] * 2)]


def test_an_exception_in_the_callback_stops_the_run_and_changes_nothing_after(glide):
    first = glide.text2im("a fox", seed=2, **FAST)

    def stop(preview):
        if preview.step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        glide.text2im("a fox", seed=2, callback=stop, **FAST)
    again = glide.text2im("a fox", seed=2, **FAST)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))


def test_images_carry_their_recipe_into_every_save(glide, tmp_path):
    out = glide.text2im("a corgi", seed=3, **FAST)
    image, recipe = out.images[0], out.recipes[0]
    assert json.loads(image.info[PNG_RECIPE_KEY])["seed"] == 3
    assert "Seed: 3" in image.info[PNG_PARAMETERS_KEY]
    image.save(tmp_path / "one.png")
    image.save(tmp_path / "two.png")  # Pillow keeps encoderinfo: the second save too
    assert read_recipe(tmp_path / "one.png") == recipe == read_recipe(tmp_path / "two.png")
    assert read_recipe(image) == recipe
    first = out.save(tmp_path / "out")
    second = out.save(tmp_path / "out")  # never over an existing file
    assert [p.name for p in first] == ["glide-text2im-a-corgi-3.png"]
    assert [p.name for p in second] == ["glide-text2im-a-corgi-3-2.png"]
    assert read_recipe(second[0]) == recipe


@pytest.mark.parametrize(("call", "message"), [
    (lambda g: g.text2im("x", guidance=3), "Unknown setting guidance"),
    (lambda g: g.text2im("x", guidance_scale=99), "Guidance scale must be between"),
    (lambda g: g.text2im("x", base_respacing=1), "Base steps"),
    (lambda g: g.text2im("x", seed=[1, 2], batch_size=3), "3 but 2 seeds"),
    (lambda g: g.text2im("x", seed=[]), "at least one seed"),
    (lambda g: g.text2im("x", seed=[1, "two"]), "Seed"),
    (lambda g: g.text2im("x", seed=2**31), "Seed"),
    (lambda g: g.clip_guided(" "), "Write a prompt"),
    (lambda g: g.inpaint(PHOTO, np.zeros((4, 4), bool), "x"), "the image is"),
    (lambda g: g.inpaint(PHOTO, np.zeros((300, 451), bool), "x"), "mask is empty"),
    (lambda g: g.inpaint(PHOTO, None, "x", mask_shape="oval:1,2,3,4"), "Cannot read the mask"),
    (lambda g: g.outpaint(PHOTO, "x"), "Give how far to extend"),
    (lambda g: g.outpaint(PHOTO, "x", aspect_ratio="16 by 9"), "Aspect ratio"),
    (lambda g: g.outpaint(PHOTO, "x", right=5000), "Extension right"),
    (lambda g: g.sweep("x", "sampler", [1]), "Cannot sweep 'sampler'"),
    (lambda g: g.rank([PHOTO], ""), "needs a prompt"),
    (lambda g: g.rerun(PHOTO), "carries no glide-ui recipe"),
])
def test_bad_values_are_refused_with_the_settings_name(glide, call, message):
    with pytest.raises(RequestError, match=message):
        call(glide)


def test_rank_scores_images_and_text2im_can_order_its_batch(glide):
    ranked = glide.text2im("a corgi", seed=8, batch_size=3, rank=True, **FAST)
    scores = glide.rank(ranked.images, "a corgi")
    assert len(scores) == 3 and all(-1 <= s <= 1 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert ranked.labels == [f"CLIP {s:.3f}" for s in scores]
    assert glide.rank([PHOTO, pixels(PHOTO)], "a cat")[0] == pytest.approx(
        glide.rank([PHOTO], "a cat")[0])


def test_sweep_and_clip_guided(glide):
    swept = glide.sweep("a corgi", "guidance_scale", [1, 4], seed=5, **FAST)
    assert swept.labels == ["guidance 1", "guidance 4"] and swept.grid is not None
    assert [r.settings["guidance_scale"] for r in swept.recipes] == [1, 4]
    assert {r.seed for r in swept.recipes} == {5}
    guided = glide.clip_guided("a red cube", seed=9, clip_source="openai", clip_scale=2.0,
                               **FAST)
    assert guided.recipes[0].pipeline == "clip_guided"
    assert guided.recipes[0].settings["clip_source"] == "openai"


def test_rerun_of_an_inpainting_needs_its_inputs_and_says_what_differs(glide):
    with Image.open(PHOTO) as photo, Image.open(PHOTO_MASK) as mask:
        made = glide.inpaint(photo, mask, "a hat", seed=6, **FAST)
        with pytest.raises(RequestError, match="needs its image and mask"):
            glide.rerun(made.images[0])
        notes = []
        rerunner = Glide(manager=glide.manager, progress=False, on_status=notes.append)
        again = rerunner.rerun(made.images[0], image=photo, mask=mask)
        assert np.array_equal(pixels(again.images[0]), pixels(made.images[0]))
        assert not [n for n in notes if n.level == "warning"]
        rerunner.rerun(made.images[0], image=photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                       mask=mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert any("image_sha256" in n.text and "mask_sha256" in n.text for n in notes)


def test_rerun_says_when_device_or_dtype_differ(glide):
    recipe = glide.text2im("a fox", seed=4, **FAST).recipes[0]
    other = "float32" if recipe.settings["dtype"] == "bfloat16" else "bfloat16"
    elsewhere = replace(recipe, settings={**recipe.settings, "dtype": other})
    notes = []
    Glide(manager=glide.manager, progress=False, on_status=notes.append).rerun(elsewhere)
    assert any(n.level == "warning" and "slightly different pixels" in n.text for n in notes)


def test_progress_bars_and_status_lines(capsys):
    fresh = Glide("tiny", device="cpu")  # a new manager: it has to load the base model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.text2im("a\x07fox", seed=1, **FAST)
    err = capsys.readouterr().err
    assert "Loading base..." in err and "base: 100%" in err and "2/2" in err
    assert any("control character" in str(w.message) for w in caught)
    quiet = Glide(manager=fresh.manager, progress=False)
    quiet.text2im("a fox", seed=1, **FAST)
    assert capsys.readouterr().err == ""
