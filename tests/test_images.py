import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageChops

from glide_ui.errors import RequestError
from glide_ui.images import (
    PNG_PARAMETERS_KEY,
    PNG_RECIPE_KEY,
    crop,
    crop_box,
    crop_mask,
    distance_to_mask,
    feather_alpha,
    grow_mask,
    load_image,
    make_grid,
    mask_bbox,
    mask_preview,
    paste_back,
    pil_to_tensor,
    png_bytes,
    quantize,
    read_png_text,
    read_recipe,
    resize_mask,
    save_png,
    tensor_to_pil,
    to_uint8,
)
from glide_ui.recipe import Recipe
from glide_ui.ui.editor_values import editor_background, mask_from_editor


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header and holds almost no data (a bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def random_rgb(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


# --- tensors ----------------------------------------------------------------------------------


def test_pil_tensor_round_trip_is_exact():
    image = random_rgb(17, 9)
    x = pil_to_tensor(image)
    assert x.shape == (1, 3, 9, 17) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert np.array_equal(np.asarray(tensor_to_pil(x)[0]), np.asarray(image))


def test_to_uint8_rounds_and_clamps_like_the_reference():
    assert to_uint8(torch.tensor([-1.0, 0.0, 1.0, -1.5, 1.5])).tolist() == [0, 128, 255, 0, 255]
    x = torch.rand(2, 3, 4, 4) * 2.4 - 1.2
    expected = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(to_uint8(x), expected)
    assert torch.equal(quantize(x), expected.float() / 127.5 - 1)


def test_tensor_to_pil_rounds_exactly_like_to_uint8():
    x = torch.randn(3, 3, 16, 16) * 1.3
    x[0, 0, 0, :4] = torch.tensor([0.0, -1.0, 1.0, 2 / 255 - 1])
    expected = to_uint8(x).permute(0, 2, 3, 1).numpy()
    assert all(np.array_equal(np.asarray(image), levels)
               for image, levels in zip(tensor_to_pil(x), expected, strict=True))


def test_tensor_to_pil_accepts_a_single_chw_image():
    (image,) = tensor_to_pil(torch.zeros(3, 5, 6))
    assert image.size == (6, 5) and image.getpixel((0, 0)) == (128, 128, 128)


# --- decoding ---------------------------------------------------------------------------------


def test_load_image_composites_alpha_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((1, 1), (0, 0, 255, 255))
    image = load_image(encode(rgba))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 1)) == (0, 0, 255)


def test_load_image_converts_palette_with_transparency_and_la():
    palette = Image.new("P", (3, 3), 0)
    palette.putpalette([10, 20, 30] + [200, 100, 50] * 255)
    palette.putpixel((2, 2), 1)
    image = load_image(encode(palette, transparency=0))
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((2, 2)) == (200, 100, 50)
    la = Image.new("LA", (2, 2), (40, 255))
    assert load_image(encode(la)).getpixel((0, 0)) == (40, 40, 40)


def test_load_image_converts_cmyk_jpeg():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    r, g, b = load_image(encode(cmyk, "JPEG", quality=95)).getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60


def test_load_image_scales_16_bit_greyscale_down():
    values = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    image = load_image(encode(Image.fromarray(values)))
    assert [image.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128,) * 3, (255,) * 3]


def test_load_image_takes_the_first_frame_of_an_animation():
    frames = [Image.new("RGB", (6, 6), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert load_image(data).getpixel((3, 3)) == (255, 0, 0)


def test_load_image_accepts_paths_files_arrays_and_images(tmp_path):
    image = random_rgb(5, 4)
    path = tmp_path / "x.png"
    image.save(path)
    for source in (path, str(path), io.BytesIO(encode(image)), np.asarray(image), image):
        assert np.array_equal(np.asarray(load_image(source)), np.asarray(image))


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"%PDF-1.4 ...",
                                  b"\x89PNG\r\n\x1a\n garbage"])
def test_load_image_refuses_non_images(data):
    with pytest.raises(RequestError, match="not an image"):
        load_image(data)


def test_load_image_refuses_truncated_files():
    data = encode(random_rgb(64, 64))
    with pytest.raises(RequestError):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize("size", [(8000, 8000), (30000, 30000)])  # over our / Pillow's limit
def test_load_image_refuses_huge_images_from_the_header(size):
    with pytest.raises(RequestError, match="too large"):
        load_image(png_header_only(*size))


def test_pixel_limit_is_a_parameter():
    data = encode(random_rgb(10, 10))
    assert load_image(data, max_pixels=100).size == (10, 10)
    with pytest.raises(RequestError, match="too large"):
        load_image(data, max_pixels=99)
    with pytest.raises(RequestError, match="too large"):
        load_image(random_rgb(10, 10), max_pixels=99)


# --- masks ------------------------------------------------------------------------------------


def editor_value(size=(40, 30), strokes=((5, 5, 10, 8),), kind="numpy"):
    """A Gradio ImageMask value: background RGB, one RGBA layer per stroke rectangle."""
    width, height = size
    layers = []
    for left, top, right, bottom in strokes:
        layer = np.zeros((height, width, 4), dtype=np.uint8)
        layer[top:bottom, left:right] = (255, 255, 255, 200)
        layers.append(layer if kind == "numpy" else Image.fromarray(layer, "RGBA"))
    background = np.full((height, width, 3), 90, dtype=np.uint8)
    return {"background": background, "layers": layers, "composite": background}


@pytest.mark.parametrize("kind", ["numpy", "pil"])
def test_mask_from_editor_is_the_union_of_the_layers_alpha(kind):
    value = editor_value(strokes=((5, 5, 10, 8), (20, 10, 22, 30)), kind=kind)
    mask = mask_from_editor(value)
    expected = np.zeros((30, 40), dtype=bool)
    expected[5:8, 5:10] = True
    expected[10:30, 20:22] = True
    assert mask.dtype == bool and np.array_equal(mask, expected)


def test_mask_from_editor_reads_layer_files_and_bare_masks(tmp_path):
    layer = np.zeros((6, 7, 4), dtype=np.uint8)
    layer[2, 3, 3] = 1
    path = tmp_path / "layer.png"
    Image.fromarray(layer, "RGBA").save(path)
    mask = mask_from_editor({"background": None, "layers": [str(path)], "composite": None})
    assert mask.sum() == 1 and mask[2, 3]
    grey = np.zeros((6, 7), dtype=np.uint8)
    grey[1, 1] = 255
    assert mask_from_editor(Image.fromarray(grey, "L"), size=(7, 6))[1, 1]
    assert mask_from_editor(grey).sum() == 1


def test_mask_from_editor_without_strokes_is_empty_and_mismatch_is_an_error():
    value = editor_value(strokes=())
    assert not mask_from_editor(value).any()
    with pytest.raises(RequestError, match="paint the mask"):
        mask_from_editor(editor_value(), size=(41, 30))
    with pytest.raises(RequestError):
        mask_from_editor(None)
    with pytest.raises(RequestError, match="upload"):
        mask_from_editor({"background": None, "layers": [], "composite": None})


def test_editor_background_is_rgb():
    assert editor_background(editor_value()).getpixel((0, 0)) == (90, 90, 90)
    with pytest.raises(RequestError):
        editor_background({"background": None, "layers": [], "composite": None})


def brute_force_distance(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    grid_y, grid_x = np.indices(mask.shape)
    d2 = (grid_y[..., None] - ys) ** 2 + (grid_x[..., None] - xs) ** 2
    return np.sqrt(d2.min(axis=-1))


def test_distance_to_mask_is_exact_up_to_the_limit():
    rng = np.random.default_rng(3)
    mask = rng.random((23, 31)) < 0.02
    mask[0, 0] = True
    expected = brute_force_distance(mask)
    got = distance_to_mask(mask, 6.5)
    near = expected <= 6.5
    np.testing.assert_allclose(got[near], expected[near], rtol=1e-6)
    assert np.isinf(got[~near]).all()


def test_grow_mask_dilates_by_a_disc():
    mask = np.zeros((21, 21), dtype=bool)
    mask[10, 10] = True
    grown = grow_mask(mask, 3)
    ys, xs = np.indices(mask.shape)
    assert np.array_equal(grown, (ys - 10) ** 2 + (xs - 10) ** 2 <= 9)
    assert np.array_equal(grow_mask(mask, 0), mask)


def test_grow_mask_near_the_border_and_when_empty():
    mask = np.zeros((10, 12), dtype=bool)
    mask[0, 11] = True
    grown = grow_mask(mask, 2)
    assert grown[0, 9] and grown[2, 11] and not grown[0, 8]
    assert not grow_mask(np.zeros((4, 4), dtype=bool), 3).any()


def test_feather_alpha_ramps_to_exactly_zero_at_the_feather_distance():
    mask = np.zeros((40, 40), dtype=bool)
    mask[15:25, 15:25] = True
    alpha = feather_alpha(mask, 8)
    distance = brute_force_distance(mask)
    assert (alpha[mask] == 1).all()
    assert (alpha[distance >= 8] == 0).all()
    ring = (distance > 0) & (distance < 8)
    assert ((alpha[ring] > 0) & (alpha[ring] < 1)).all()
    np.testing.assert_allclose(alpha[ring], 1 - distance[ring] / 8, rtol=1e-6)
    assert np.array_equal(feather_alpha(mask, 0), mask.astype(np.float32))


def test_resize_mask_keeps_any_painted_pixel():
    mask = np.zeros((400, 600), dtype=bool)
    mask[123, 456] = True
    small = resize_mask(mask, 64)
    assert small.shape == (64, 64) and small.sum() >= 1
    assert resize_mask(mask, (60, 40)).sum() >= 1
    assert resize_mask(np.ones((10, 10), bool), 256).all()


@pytest.mark.parametrize("height, width, size", [(40, 60, 16), (9, 9, 32), (7, 13, 5),
                                                  (32, 32, 16), (16, 16, 16)])
def test_resize_mask_marks_every_cell_that_overlaps_a_painted_pixel(height, width, size):
    mask = np.random.default_rng(size).random((height, width)) < 0.03
    def overlapping(cell, extent):  # input pixels whose area meets output cell `cell`
        low, high = cell * extent / size, (cell + 1) * extent / size
        return [p for p in range(extent) if p < high and p + 1 > low]

    expected = np.zeros((size, size), dtype=bool)
    for row in range(size):
        for col in range(size):
            cells = np.ix_(overlapping(row, height), overlapping(col, width))
            expected[row, col] = mask[cells].any()
    assert np.array_equal(resize_mask(mask, size), expected)


def test_crop_box_is_a_square_holding_mask_feather_and_context():
    mask = np.zeros((400, 600), dtype=bool)
    mask[100:140, 300:360] = True
    left, top, right, bottom = crop_box(mask, feather=8)
    assert right - left == bottom - top
    assert 0 <= left and 0 <= top and right <= 600 and bottom <= 400
    assert left <= 300 - 8 - 16 and right >= 360 + 8 + 16
    assert top <= 100 - 8 - 16 and bottom >= 140 + 8 + 16


def test_crop_box_near_an_edge_stays_inside_and_a_wide_mask_overhangs():
    mask = np.zeros((400, 600), dtype=bool)
    mask[0:10, 590:600] = True
    box = crop_box(mask)
    assert box[2] == 600 and box[1] == 0 and box[2] - box[0] == box[3] - box[1]
    wide = np.zeros((100, 300), dtype=bool)
    wide[40:60, 5:295] = True
    assert crop_box(wide) == (0, -100, 300, 200)
    with pytest.raises(RequestError, match="empty"):
        crop_box(np.zeros((5, 5), dtype=bool))


def test_crop_fills_outside_the_image_and_crop_mask_marks_it_repaint():
    image = random_rgb(30, 10)
    patch = crop(image, (0, -10, 30, 20))
    assert patch.size == (30, 30)
    assert patch.getpixel((0, 0)) == (127, 127, 127)
    assert patch.getpixel((5, 12)) == image.getpixel((5, 2))
    mask = np.zeros((10, 30), dtype=bool)
    cropped = crop_mask(mask, (0, -10, 30, 20))
    assert cropped[:10].all() and not cropped[10:20].any() and cropped[20:].all()


def test_paste_back_keeps_every_pixel_where_alpha_is_zero():
    original = random_rgb(60, 40, seed=1)
    mask = np.zeros((40, 60), dtype=bool)
    mask[10:20, 20:30] = True
    alpha = feather_alpha(mask, 5)
    box = crop_box(mask, feather=5)
    patch = Image.new("RGB", (256, 256), (0, 255, 0))
    out = np.asarray(paste_back(original, patch, box, alpha))
    before = np.asarray(original)
    assert np.array_equal(out[alpha == 0], before[alpha == 0])
    assert (out[mask] == (0, 255, 0)).all()
    assert mask_bbox(np.any(out != before, axis=2)) is not None


def test_mask_preview_tints_what_the_model_repaints():
    image = random_rgb(120, 80)
    mask = np.zeros((80, 120), dtype=bool)
    mask[30:40, 50:70] = True
    preview = mask_preview(image, mask, grow=4)
    assert preview.size == (256, 256) and preview.mode == "RGB"
    pixels = np.asarray(preview).astype(int)
    reddish = (pixels[..., 0] > 150) & (pixels[..., 1] < 110) & (pixels[..., 2] < 110)
    assert 0 < reddish.mean() < 0.9


# --- grids ------------------------------------------------------------------------------------


def test_make_grid_layout_and_labels():
    images = [Image.new("RGB", (32, 32), (0, 0, 0)) for _ in range(5)]
    plain = make_grid(images, cols=3, gap=2)
    assert plain.size == (3 * 32 + 4 * 2, 2 * 32 + 3 * 2)
    assert plain.getpixel((2, 2)) == (0, 0, 0) and plain.getpixel((1, 1)) == (255, 255, 255)
    labelled = make_grid(images, cols=3, labels=[f"scale {i}" for i in range(5)], gap=2)
    assert labelled.width == plain.width and labelled.height > plain.height
    strip = np.asarray(labelled)[2:labelled.height // 2 - 34, 2:34]
    assert (strip < 128).any(), "the label's text is drawn above the first tile"
    assert make_grid(images[:1]).size == (32 + 8, 32 + 8)


# --- PNG metadata -----------------------------------------------------------------------------


RECIPE = Recipe(pipeline="text2im", prompt="a corgi in a tophat, «été» 漢字 🐕",
                seed=1234, settings={"guidance_scale": 3.0, "base_respacing": "100",
                                     "upsample": True},
                models={"base": "ab" * 32})


def test_recipe_round_trips_through_png_bytes_files_and_images(tmp_path):
    image = random_rgb(16, 16)
    data = png_bytes(image, RECIPE)
    assert read_recipe(data) == RECIPE
    path = save_png(image, tmp_path / "out.png", RECIPE)
    assert read_recipe(path) == RECIPE and read_recipe(str(path)) == RECIPE
    with Image.open(path) as opened:
        assert read_recipe(opened) == RECIPE
        assert ImageChops.difference(opened.convert("RGB"), image).getbbox() is None
    text = read_png_text(data)
    assert text[PNG_PARAMETERS_KEY].startswith(RECIPE.prompt + "\n")
    assert "Seed: 1234" in text[PNG_PARAMETERS_KEY]
    assert PNG_RECIPE_KEY in text


def test_read_recipe_without_one_or_with_junk_is_none():
    assert read_recipe(png_bytes(random_rgb(4, 4))) is None
    assert read_recipe(encode(random_rgb(4, 4), "JPEG")) is None
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_RECIPE_KEY, "{not json")
    assert read_recipe(encode(random_rgb(4, 4), pnginfo=info)) is None
    with pytest.raises(RequestError):
        read_recipe(b"plain text")


def test_read_recipe_does_not_decode_a_huge_image():
    with pytest.raises(RequestError, match="too large"):
        read_recipe(png_header_only(9000, 9000))
