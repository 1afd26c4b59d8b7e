"""Upscaling on the tiny models: the window plan (every result pixel covered, overlaps as
planned), each window given exactly what its neighbours made, sizes at x4 and x2, one image
of a batch alone, Stop, the recipe's rerun, the prompt from the picture's recipe, and bad
requests refused in one message."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image
from pipeline_runs import run

from glide_ui import Glide
from glide_ui.errors import RequestError
from glide_ui.images import png_bytes, tensor_to_pil
from glide_ui.pipelines.events import Preview, Progress
from glide_ui.pipelines.requests import validate
from glide_ui.pipelines.upscale import FILL, plan_upscale, upscale, window_weights
from glide_ui.pipelines.upscale_request import UpscaleRequest
from glide_ui.recipe import Recipe

upscale_module = sys.modules["glide_ui.pipelines.upscale"]  # (`pipelines.upscale`: the function)
FAST = dict(upsample_respacing="2", preview_interval=3600)


def photo(width, height, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def covered(canvas, boxes):
    mask = np.zeros(canvas[::-1], dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


@pytest.mark.parametrize(("size", "scale", "overlap", "count"), [
    ((256, 256), 4, 64, 25), ((256, 256), 2, 64, 9), ((256, 256), 4, 16, 25),
    ((256, 256), 4, 128, 49), ((100, 70), 4, 64, 4), ((130, 256), 2, 32, 6)])
def test_the_plan_covers_every_pixel_with_windows_overlapping_as_asked(size, scale, overlap,
                                                                       count):
    plan = plan_upscale(size, scale, overlap)
    assert plan.canvas == (size[0] * scale, size[1] * scale)
    assert len(plan.windows) == count
    assert covered(plan.canvas, plan.windows).all(), "a result pixel is in no window"
    for box in plan.windows:
        assert box[2] - box[0] == box[3] - box[1] == 256
        assert 0 <= box[0] and 0 <= box[1] and box[2] <= plan.canvas[0] and \
            box[3] <= plan.canvas[1]
        assert all(value % scale == 0 for value in box), "a window starts mid source pixel"
        source = plan.source_box(box)
        assert source[2] - source[0] == 256 // scale
    xs = sorted({box[0] for box in plan.windows})
    ys = sorted({box[1] for box in plan.windows})
    assert plan.windows == [(x, y, x + 256, y + 256) for y in ys for x in xs], \
        "row by row, left to right"
    for starts in (xs, ys):  # neighbours share at least the overlap
        assert all(256 - (b - a) >= overlap for a, b in zip(starts, starts[1:], strict=False))
    assert plan.band == -(-overlap // scale) * scale // 2


def test_a_window_is_given_the_finished_pixels_beyond_the_band_and_blends_the_band():
    finished = np.zeros((8, 10), dtype=bool)
    finished[:, :6] = True  # a left neighbour made the first 6 columns
    known, weight = window_weights(finished, band=3)
    assert known[0].tolist() == [True] * 3 + [False] * 7
    assert weight[0].tolist() == [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert (known == known[0]).all() and (weight == weight[0]).all()
    finished[:2] = True  # and a top neighbour the first 2 rows: the corner counts both
    known, weight = window_weights(finished, band=3)
    assert known[:, 8].tolist() == [False] * 8 and weight[:3, 8].tolist() == [0.5, 0.75, 1]


def test_each_window_gets_what_its_neighbours_made_and_every_pixel_is_made(manager,
                                                                            monkeypatch):
    given, made = [], []
    stage = upscale_module.upsample_stage

    def spy_stage(model, request, seeds, patches, low_res, generators):
        given.append([(patch.image[256][0].clone(), patch.known[256][0, 0].bool().clone())
                      for patch in patches])
        x = yield from stage(model, request, seeds, patches, low_res, generators)
        made.append(np.asarray(tensor_to_pil(x)[0]))
        return x

    monkeypatch.setattr(upscale_module, "upsample_stage", spy_stage)
    request = UpscaleRequest(image=photo(100, 64), prompt="a red fox", seed=2,
                             **{**FAST, "preview_interval": 0})
    events, result = run(upscale(request, manager))
    (out,) = result.images
    assert out.size == (400, 256) and out.mode == "RGB"
    plan = plan_upscale((100, 64), 4, 64)
    assert plan.windows == [(0, 0, 256, 256), (144, 0, 400, 256)] and len(given) == 2
    assert not given[0][0][1].any(), "the first window has no neighbour"
    # Window 2 is given the pixels window 1 made, exactly, beyond the band (112 px shared).
    (image, known), = given[1]
    keep = 112 - plan.band
    assert known[:, :keep].all() and not known[:, keep:].any()
    shown = ((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    assert np.array_equal(shown[:, :keep], made[0][:, 144:144 + keep])
    # Those pixels stay as made; the band is blended; the rest is window 2's.
    result_pixels = np.asarray(out)
    assert np.array_equal(result_pixels[:, :144 + keep], made[0][:, :144 + keep])
    band = result_pixels[:, 144 + keep + 1:256].astype(int)
    assert (band != made[0][:, 144 + keep + 1:]).any() and (band != made[1][:, keep + 1:112]).any()
    assert np.array_equal(result_pixels[:, 256:], made[1][:, 112:])
    assert not (np.asarray(out) == FILL).all(axis=-1).all(axis=0).any(), "a column unmade"
    stages = [e.stage for e in events if isinstance(e, Progress)]
    assert stages[0] == "window 1/2 · upsample" and stages[-1] == "window 2/2 · upsample"
    previews = [e for e in events if isinstance(e, Preview)]
    assert previews and all(p.images[0].size == (400, 256) for p in previews), \
        "previews show the whole canvas"
    recipe = result.recipes[0]
    assert recipe.pipeline == "upscale" and recipe.prompt == "a red fox"
    assert (recipe.settings["scale"], recipe.settings["overlap"]) == (4, 64)
    assert recipe.settings["image_size"] == [100, 64] and list(recipe.models) == \
        ["upsample-inpaint"]


def test_one_image_of_a_batch_comes_out_the_same_alone_at_x2(manager):
    request = UpscaleRequest(image=photo(128, 140, seed=1), prompt="a beach", scale=2,
                             seed=10, batch_size=2, **FAST)
    _, batch = run(upscale(request, manager))
    assert [image.size for image in batch.images] == [(256, 280)] * 2
    _, alone = run(upscale(UpscaleRequest(**{**request.__dict__, "seed": 11,
                                             "batch_size": 1}), manager))
    assert np.array_equal(np.asarray(batch.images[1]), np.asarray(alone.images[0]))
    assert not np.array_equal(np.asarray(batch.images[0]), np.asarray(batch.images[1]))


def test_a_stopped_upscale_leaves_nothing_behind(manager):
    request = UpscaleRequest(image=photo(64, 64), prompt="a lake", seed=4,
                             **{**FAST, "upsample_respacing": "3"})
    _, fresh = run(upscale(request, manager))
    events = upscale(request, manager)
    for event in events:
        if isinstance(event, Progress) and event.step == 2:
            break
    events.close()  # what Stop does
    _, again = run(upscale(request, manager))
    assert np.array_equal(np.asarray(fresh.images[0]), np.asarray(again.images[0]))


def test_the_recipe_reruns_to_the_same_pixels(manager):
    glide = Glide(manager=manager, progress=False)
    source = photo(64, 64, seed=3)
    out = glide.upscale(source, "a hill", seed=8, **FAST)
    assert out.images[0].size == (256, 256)
    again = glide.rerun(out.images[0], image=source)
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(out.images[0]))
    with pytest.raises(RequestError, match="needs its image to be given again"):
        glide.rerun(out.images[0])


def test_an_empty_prompt_comes_from_the_pictures_recipe():
    made = png_bytes(photo(64, 64), Recipe("text2im", "a corgi on a beach", 5, {}))
    checked, notices = validate(UpscaleRequest(image=made))
    assert checked.prompt == "a corgi on a beach"
    assert any("from the picture's recipe" in notice.text for notice in notices)
    typed, _ = validate(UpscaleRequest(image=made, prompt="a dog"))
    assert typed.prompt == "a dog"
    _, notices = validate(UpscaleRequest(image=photo(64, 64)))
    assert any("carries no recipe" in notice.text for notice in notices)


def test_a_small_picture_is_first_enlarged_to_fill_a_window():
    checked, notices = validate(UpscaleRequest(image=photo(40, 20), prompt="x", scale=2))
    assert checked.image.size == (256, 128)
    assert "first enlarged to 256 x 128" in notices[0].text


@pytest.mark.parametrize(("changes", "message"), [
    ({"image": photo(257, 100)}, "The picture is 257 x 100 pixels; upscaling takes at most "
                                 "256 x 256"),
    ({"image": b"GIF89a no"}, "not an image"),
    ({"image": None}, "Upload an image to upscale"),
    ({"scale": 3}, "Scale must be 4 or 2; x3 is not offered"),
    ({"scale": 8}, "Scale must be a whole number from 2 to 4"),
    ({"overlap": 200}, r"Window overlap \(px\) must be a whole number from 8 to 128"),
    ({"image": photo(256, 10)}, "too narrow to upscale x4"),
])
def test_bad_upscale_requests(manager, changes, message):
    request = UpscaleRequest(**{"image": photo(64, 64), **changes})
    with pytest.raises(RequestError, match=message):
        next(upscale(request, manager))
