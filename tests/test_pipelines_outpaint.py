"""Outpainting on the tiny models: the picture kept exactly outside its blend band, every new
pixel made, the window plan, one image of a batch alone, and bad requests refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pipeline_runs import run

from glide_ui.errors import RequestError
from glide_ui.pipelines.events import Preview, Progress
from glide_ui.pipelines.outpaint import FILL, WINDOW, blend_alpha, layout, outpaint, plan_windows
from glide_ui.pipelines.requests import (
    MAX_EXTENSION,
    OutpaintRequest,
    extension_to_ratio,
    validate,
)

FAST = dict(base_respacing="2", upsample=False, preview_interval=3600)


def photo(width, height, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def painted(canvas, boxes):
    """Which canvas pixels the boxes cover (clipped to the canvas)."""
    covered = np.zeros(canvas[::-1], dtype=bool)
    for x0, y0, x1, y1 in boxes:
        covered[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return covered


def test_the_plan_for_a_large_extension_covers_the_new_area_with_overlapping_windows():
    plan = layout((300, 200), left=400, top=300, right=500, bottom=250, blend=8)
    assert plan.canvas == (1200, 750) and plan.picture == (400, 300, 700, 500)
    assert plan.kept == (408, 308, 692, 492)
    windows = plan.windows
    assert len(windows) > 10
    assert all(x1 - x0 == y1 - y0 == WINDOW for x0, y0, x1, y1 in windows), \
        "a window is the model's size: it never shrinks the picture"
    assert all(0 <= x0 and x1 <= 1200 and 0 <= y0 and y1 <= 750 for x0, y0, x1, y1 in windows)
    made = painted(plan.canvas, [plan.kept])
    for box in windows:
        overlap = painted(plan.canvas, [box]) & made
        assert overlap.sum() >= WINDOW * 32, f"{box} sees too little of what is made"
        made |= painted(plan.canvas, [box])
    assert made.all(), "some new pixels are in no window"


def test_windows_overhang_a_canvas_smaller_than_the_model_window():
    windows = plan_windows((30, 12), (0, 0, 20, 12))
    assert windows == [(0, -9, 30, 21)]  # square, centred on the short side
    assert plan_windows((600, 300), (0, 0, 472, 300)) == [(344, 0, 600, 256),
                                                           (344, 44, 600, 300)]


def test_the_blend_band_falls_linearly_inside_the_picture():
    plan = layout((40, 30), left=0, top=0, right=20, bottom=10, blend=4)
    alpha = blend_alpha(plan)
    assert alpha.shape == (40, 60)
    assert (alpha[30:, :] == 1).all() and (alpha[:, 40:] == 1).all()
    assert alpha[10, 36:40].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert alpha[26:30, 10].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert (alpha[:26, :36] == 0).all()


def test_outpainting_keeps_the_picture_outside_the_band_and_fills_every_new_pixel(manager):
    image = photo(120, 90)
    request = OutpaintRequest(image=image, prompt="a wide field", left=30, right=170,
                              bottom=40, blend=6, seed=3, **{**FAST, "preview_interval": 0})
    events, result = run(outpaint(request, manager))
    stages = [e.stage for e in events if isinstance(e, Progress)]
    windows = sorted({stage.split(" · ")[0] for stage in stages})
    assert len(windows) >= 2 and windows[0] == f"window 1/{len(windows)}"
    assert any(isinstance(e, Preview) for e in events)

    (out,) = result.images
    assert out.size == (320, 130) and out.mode == "RGB"
    after = np.asarray(out)
    inside = after[:90, 30:150]
    before = np.asarray(image)
    assert np.array_equal(inside[:-6, 6:-6], before[:-6, 6:-6]), \
        "pixels farther than the band from the new area changed"
    band = np.ones((90, 120), dtype=bool)
    band[:-6, 6:-6] = False
    assert (inside[band] != before[band]).any(axis=-1).mean() > 0.5, "the band is not blended"
    new = np.ones((130, 320), dtype=bool)
    new[:90, 30:150] = False
    assert not (after[new] == FILL).all(axis=-1).any(), "a new pixel was left unmade"

    recipe = result.recipes[0]
    assert recipe.pipeline == "outpaint" and recipe.seed == 3
    assert {k: recipe.settings[k] for k in ("left", "top", "right", "bottom", "blend")} == \
        {"left": 30, "top": 0, "right": 170, "bottom": 40, "blend": 6}
    assert recipe.settings["image_size"] == [120, 90] and set(recipe.models) == {"base-inpaint"}


def test_one_image_of_a_batch_comes_out_the_same_alone(manager):
    # Two windows: the second sees the first's pixels, which differ from image to image.
    request = OutpaintRequest(image=photo(100, 80, seed=1), prompt="a beach", right=250,
                              seed=10, batch_size=2, **FAST)
    assert len(layout((100, 80), 0, 0, 250, 0, 8).windows) == 2
    _, batch = run(outpaint(request, manager))
    _, alone = run(outpaint(OutpaintRequest(**{**request.__dict__, "seed": 11,
                                               "batch_size": 1}), manager))
    assert np.array_equal(np.asarray(batch.images[1]), np.asarray(alone.images[0]))
    assert not np.array_equal(np.asarray(batch.images[0]), np.asarray(batch.images[1]))
    assert alone.recipes[0].seed == 11


def test_a_stopped_outpainting_leaves_nothing_behind(manager):
    request = OutpaintRequest(image=photo(60, 40), prompt="a lake", right=30, seed=4,
                              **{**FAST, "base_respacing": "4"})
    _, fresh = run(outpaint(request, manager))
    events = outpaint(request, manager)
    for event in events:
        if isinstance(event, Progress) and event.step == 2:
            break
    events.close()  # what Stop does
    _, again = run(outpaint(request, manager))
    assert np.array_equal(np.asarray(fresh.images[0]), np.asarray(again.images[0]))


def test_an_aspect_ratio_extends_the_short_way_half_on_each_side():
    assert extension_to_ratio((451, 300), 16 / 9) == {"left": 41, "top": 0, "right": 41,
                                                       "bottom": 0}
    assert extension_to_ratio((451, 300), 1.0) == {"left": 0, "top": 75, "right": 0,
                                                    "bottom": 76}
    checked, _ = validate(OutpaintRequest(image=photo(451, 300), aspect_ratio=" 16:9 "))
    assert (checked.left, checked.right, checked.aspect_ratio) == (41, 41, "16:9")
    assert validate(checked)[0] == checked  # a recipe holds both, and they agree


@pytest.mark.parametrize("changes, message", [
    ({}, "Give how far to extend"),
    ({"right": MAX_EXTENSION + 1}, "Extension right (px) must be a whole number from 0 to 2048"),
    ({"left": -5}, "Extension left"),
    ({"top": 2.5}, "Extension top"),
    ({"aspect_ratio": "wide"}, "Aspect ratio: write width:height"),
    ({"aspect_ratio": "0:1"}, "Aspect ratio"),
    ({"aspect_ratio": "100:1"}, "Aspect ratio"),
    ({"aspect_ratio": "4:3"}, "already has that aspect ratio"),
    ({"aspect_ratio": "16:9", "right": 10}, "not both"),
    ({"right": 10, "blend": 65}, "Blend band"),
    ({"right": 10, "left": 10, "blend": 30}, "covers the whole 40 x 30 picture"),
    ({"right": 10, "image": None}, "Upload an image to outpaint"),
    ({"right": 10, "image": b"GIF89a no"}, "not an image"),
    ({"right": 10, "batch_size": 0}, "Batch size"),
])
def test_bad_outpaint_requests(manager, changes, message):
    request = OutpaintRequest(**{"image": photo(40, 30), **changes})
    with pytest.raises(RequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        next(outpaint(request, manager))


def test_a_result_beyond_the_pixel_limit_is_refused(monkeypatch):
    monkeypatch.setattr("glide_ui.pipelines.requests.MAX_PIXELS", 20_000)
    with pytest.raises(RequestError, match="would be 200 x 120 pixels; the limit is 0.02"):
        validate(OutpaintRequest(image=photo(100, 120), right=100))
