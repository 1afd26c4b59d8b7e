"""Inpainting on the tiny models: large images keep their pixels outside the mask."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from pipeline_runs import run

from glide_ui.errors import RequestError
from glide_ui.images import distance_to_mask, grow_mask
from glide_ui.models import ModelManager
from glide_ui.pipelines.events import Preview, Progress, Status
from glide_ui.pipelines.inpaint import BASE_SIZE, UPSAMPLE_SIZE, inpaint, prepare_patch
from glide_ui.pipelines.requests import InpaintRequest
from glide_ui.ui.editor_values import mask_from_editor


def photo(width=600, height=400, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def rectangle_mask(width=600, height=400, box=(200, 100, 260, 150)):
    mask = np.zeros((height, width), dtype=bool)
    left, top, right, bottom = box
    mask[top:bottom, left:right] = True
    return mask



def test_inpainting_a_large_image_changes_nothing_outside_mask_and_feather():
    fresh = ModelManager(model_set="tiny", device="cpu")
    image, mask = photo(), rectangle_mask()
    request = InpaintRequest(image=image, mask=mask, prompt="a hat", seed=3, mask_grow=3,
                             mask_feather=6, base_respacing="3", upsample_respacing="2",
                             preview_interval=0)
    events, result = run(inpaint(request, fresh))
    assert [e.text for e in events if isinstance(e, Status)] == [
        "Loading base-inpaint...", "Loading upsample-inpaint..."]
    assert [e.step for e in events if isinstance(e, Progress) and e.stage == "base"] == [1, 2, 3]
    assert [e.step for e in events if isinstance(e, Progress) and e.stage == "upsample"] == [1, 2]
    previews = [e for e in events if isinstance(e, Preview)]
    assert {p.images[0].size for p in previews} == {(BASE_SIZE,) * 2, (UPSAMPLE_SIZE,) * 2}

    (out,) = result.images
    assert out.size == image.size and out.mode == "RGB"
    before, after = np.asarray(image), np.asarray(out)
    distance = distance_to_mask(grow_mask(mask, 3), 6)
    outside = ~(distance < 6)  # farther than the feather from the grown mask
    assert np.array_equal(after[outside], before[outside])
    changed = (after != before).any(axis=2)
    assert changed[mask].mean() > 0.9, "the masked region is repainted"

    recipe = result.recipes[0]
    assert recipe.pipeline == "inpaint" and recipe.seed == 3
    assert recipe.settings["mask_grow"] == 3 and recipe.settings["mask_feather"] == 6
    assert recipe.settings["image_size"] == [600, 400]
    assert len(recipe.settings["image_sha256"]) == 64
    assert set(recipe.models) == {"base-inpaint", "upsample-inpaint"}


def test_cancelled_inpainting_is_not_remembered(manager):
    request = InpaintRequest(image=photo(160, 120), mask=rectangle_mask(160, 120, (40, 30, 90, 70)),
                             prompt="a boat", seed=8, base_respacing="4", upsample=False,
                             preview_interval=3600)
    _, fresh = run(inpaint(request, manager))
    events = inpaint(request, manager)
    for event in events:
        if isinstance(event, Progress) and event.step == 2:
            break
    events.close()
    _, other = run(inpaint(replace(request, prompt="a castle", seed=9), manager))
    _, again = run(inpaint(request, manager))
    assert np.array_equal(np.asarray(fresh.images[0]), np.asarray(again.images[0]))
    assert not np.array_equal(np.asarray(fresh.images[0]), np.asarray(other.images[0]))


def test_full_mask_is_said_and_repaints_everything(manager):
    request = InpaintRequest(image=photo(90, 60), mask=np.ones((60, 90), dtype=bool),
                             prompt="", seed=1, base_respacing="2", upsample=False,
                             preview_interval=3600)
    events, result = run(inpaint(request, manager))
    notices = [e.text for e in events if isinstance(e, Status)]
    assert any("whole image" in text for text in notices)
    assert any("unconditional" in text for text in notices)
    assert result.images[0].size == (90, 60)


def test_editor_value_as_mask(manager):
    layer = np.zeros((60, 80, 4), dtype=np.uint8)
    layer[10:30, 20:50, 3] = 255
    editor = {"background": np.asarray(photo(80, 60)), "layers": [layer], "composite": None}
    request = InpaintRequest(image=photo(80, 60), mask=mask_from_editor(editor), prompt="x",
                             seed=2,
                             base_respacing="2", upsample=False, mask_feather=0,
                             preview_interval=3600)
    _, result = run(inpaint(request, manager))
    changed = (np.asarray(result.images[0]) != np.asarray(photo(80, 60))).any(axis=2)
    assert not changed[layer[..., 3] == 0].any()


@pytest.mark.parametrize("changes, message", [
    ({"mask": np.zeros((400, 600), dtype=bool)}, "mask is empty"),
    ({"image": b"GIF89a not really"}, "not an image"),
    ({"batch_size": 0}, "Batch size"),
    ({"guidance_scale": -1.0}, "Guidance scale"),
])
def test_bad_inpaint_requests(manager, changes, message):
    request = InpaintRequest(**{"image": photo(), "mask": rectangle_mask(), "prompt": "x",
                                **changes})
    with pytest.raises(RequestError, match=message):
        next(inpaint(request, manager))


def test_patch_holds_the_mask_at_both_model_sizes():
    mask = rectangle_mask()
    patch = prepare_patch(photo(), mask, feather=8)
    left, top, right, bottom = patch.box
    assert right - left == bottom - top
    for size in (BASE_SIZE, UPSAMPLE_SIZE):
        assert patch.image[size].shape == (1, 3, size, size)
        known = patch.known[size][0, 0].numpy()
        assert set(np.unique(known)) == {0.0, 1.0}
        # every painted pixel maps into the repainted (0) area at this size
        ys, xs = np.nonzero(mask)
        scale = size / (right - left)
        rows = ((ys - top) * scale).astype(int)
        cols = ((xs - left) * scale).astype(int)
        assert (known[rows, cols] == 0).all()
