"""Mask tools: shapes by coordinates, shrinking as well as growing, inverting, and the
inpainting pipeline honouring them (tiny models)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pipeline_runs import run

from glide_ui.errors import RequestError
from glide_ui.images import grow_mask
from glide_ui.pipelines.inpaint import inpaint
from glide_ui.pipelines.masks import parse_shapes, repaint_mask, shape_mask
from glide_ui.pipelines.requests import InpaintRequest, request_from_recipe, validate


def square(size=(60, 40), box=(10, 10, 30, 30)):
    mask = np.zeros(size[::-1], dtype=bool)
    mask[box[1]:box[3], box[0]:box[2]] = True
    return mask


def test_shapes_are_read_and_drawn_by_their_pixel_centres():
    assert parse_shapes(" rect: 1,2,3,4 ;ELLIPSE:0,0,10.5,8; ") == [
        ("rect", (1.0, 2.0, 3.0, 4.0)), ("ellipse", (0.0, 0.0, 10.5, 8.0))]
    assert parse_shapes("") == [] and parse_shapes(None) == []
    rect = shape_mask("rect:2,3,7,5", (10, 8))
    assert np.array_equal(rect, square((10, 8), (2, 3, 7, 5)))
    ellipse = shape_mask("ellipse:0,0,20,10", (20, 10))
    assert ellipse[5, 10] and ellipse[5, 0] and ellipse[0, 10]  # centre and edge midpoints
    assert not ellipse[0, 0] and not ellipse[9, 19]  # corners of the box are outside
    assert ellipse.sum() == pytest.approx(np.pi * 10 * 5, rel=0.05)
    both = shape_mask("rect:0,0,2,2; rect:8,8,10,10", (10, 10))
    assert both.sum() == 8
    clipped = shape_mask("rect:-5,-5,3,3", (10, 10))
    assert clipped.sum() == 9


@pytest.mark.parametrize("spec, message", [
    ("circle:1,2,3,4", "Cannot read the mask shape 'circle:1,2,3,4'"),
    ("rect:1,2,3", "Cannot read"),
    ("rect:a,b,c,d", "Cannot read"),
    ("rect:5,5,5,9", "is empty"),
    ("ellipse:50,50,60,60", "lies outside the 10 x 10 picture"),
    (42, "must be text"),
])
def test_bad_shapes_are_refused_with_the_reason(spec, message):
    with pytest.raises(RequestError, match=message):
        shape_mask(spec, (10, 10))


def test_a_negative_grow_shrinks_the_mask_and_the_edge_does_not_count():
    assert np.array_equal(grow_mask(square(), -3), square(box=(13, 13, 27, 27)))
    assert np.array_equal(grow_mask(grow_mask(square(), 3), -3), square())  # a closing
    at_edge = square(box=(0, 0, 20, 20))
    assert np.array_equal(grow_mask(at_edge, -3), square(box=(0, 0, 17, 17)))
    assert not grow_mask(square(), -10).any()


def test_the_repaint_mask_unites_inverts_then_grows():
    painted = square()
    both = repaint_mask(painted, "rect:40,0,50,10")
    assert both.sum() == 400 + 100
    kept = repaint_mask(painted, invert=True)
    assert np.array_equal(kept, ~painted)
    assert np.array_equal(repaint_mask(painted, invert=True, grow=-2), grow_mask(~painted, -2))
    with pytest.raises(RequestError, match="keeps the whole picture"):
        repaint_mask(np.ones((4, 4), dtype=bool), invert=True)
    with pytest.raises(RequestError, match="mask is empty"):
        repaint_mask(np.zeros((4, 4), dtype=bool))
    with pytest.raises(RequestError, match="Shrinking the mask by 11 px leaves nothing"):
        repaint_mask(painted, grow=-11)


def photo(width=60, height=40):
    rng = np.random.default_rng(4)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


FAST = dict(base_respacing="2", upsample=False, preview_interval=3600, mask_feather=0)


def test_painting_what_to_keep_keeps_it_exactly(manager):
    request = InpaintRequest(image=photo(), mask=square(), prompt="x", seed=1,
                             mask_invert=True, **FAST)
    _, result = run(inpaint(request, manager))
    after, before = np.asarray(result.images[0]), np.asarray(photo())
    keep = square()
    assert np.array_equal(after[keep], before[keep])
    assert (after[~keep] != before[~keep]).any(axis=-1).mean() > 0.9
    assert result.recipes[0].settings["mask_invert"] is True


def test_a_shape_alone_is_a_mask_and_reruns_from_its_recipe(manager):
    request = InpaintRequest(image=photo(), mask=None, prompt="x", seed=2,
                             mask_shape="ellipse:10,5,40,35", mask_grow=-2, **FAST)
    _, result = run(inpaint(request, manager))
    changed = (np.asarray(result.images[0]) != np.asarray(photo())).any(axis=-1)
    region = grow_mask(shape_mask("ellipse:10,5,40,35", (60, 40)), -2)
    assert not changed[~region].any() and changed[region].mean() > 0.9
    again = request_from_recipe(result.recipes[0], image=photo())
    assert again.mask is None and again.mask_shape == "ellipse:10,5,40,35"
    _, rerun = run(inpaint(again, manager))
    assert np.array_equal(np.asarray(rerun.images[0]), np.asarray(result.images[0]))


def test_inpaint_requests_check_the_mask_tools():
    base = dict(image=photo(), prompt="x")
    with pytest.raises(RequestError, match="No mask was given"):
        validate(InpaintRequest(mask=None, **base))
    with pytest.raises(RequestError, match="Cannot read the mask shape"):
        validate(InpaintRequest(mask=square(), mask_shape="rect:1,2", **base))
    with pytest.raises(RequestError, match="Mask grow must be a whole number from -256 to 256"):
        validate(InpaintRequest(mask=square(), mask_grow=-257, **base))
    with pytest.raises(RequestError, match="Shrinking"):
        validate(InpaintRequest(mask=square(), mask_grow=-20, **base))
    _, notices = validate(InpaintRequest(mask=np.zeros((40, 60), bool), mask_invert=True,
                                         **base))
    assert "whole image" in notices[0].text
