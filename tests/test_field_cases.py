"""Field inputs (issue #12) through Python and the HTTP API: phone photos with an EXIF
orientation, masks in the forms other tools save, recipes in any PNG text chunk, and
recipes that restore every setting. The page's side is tests/test_field_cases_browser.py;
the files are tests/fixtures/field_cases/ (see its README).

HTTP runs go to `app.py --models tiny` (the conftest `app`); Python runs use the conftest
`manager`. Both run the same default dtype, so each side's reruns must match pixel for pixel.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from field_cases import (
    OPAQUE_MASK,
    PAINTED_BOX,
    PHOTOS,
    PICTURE,
    PORTRAIT,
    PORTRAIT_MASK,
    RECIPE_AFTER_DATA,
    RECIPE_CONTROL,
    RECIPE_DDIM10,
    WHITE_BOX,
    as_viewer_shows,
    box_mask,
    changed,
    ihdr_only,
    mask_forms,
    png_with_text,
    text_chunk,
    unreadable_masks,
    with_orientation,
)
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from pipeline_runs import run

from glide_ui.errors import RequestError
from glide_ui.images import (
    PNG_PARAMETERS_KEY,
    PNG_RECIPE_KEY,
    load_image,
    open_image,
    png_bytes,
    read_png_text,
    read_recipe,
    upright,
)
from glide_ui.models import ModelManager
from glide_ui.pipelines.clip_guided import clip_guided
from glide_ui.pipelines.common import recipe_settings
from glide_ui.pipelines.inpaint import inpaint
from glide_ui.pipelines.outpaint import outpaint
from glide_ui.pipelines.rank import rank
from glide_ui.pipelines.requests import (
    ClipGuidedRequest,
    InpaintRequest,
    OutpaintRequest,
    Text2ImRequest,
    request_from_recipe,
    validate,
)
from glide_ui.pipelines.text2im import text2im
from glide_ui.recipe import Recipe
from glide_ui.ui.editor_values import mask_from_editor
from glide_ui.ui.settings import request_fields, restore_plan, restore_warnings, widget_values

QUICK = dict(base_respacing="2", upsample=False, preview_interval=3600)  # Python runs
FAST = {"steps": 2, "upsample": False}  # HTTP runs


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


def pixels(path_or_image) -> np.ndarray:
    image = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    return np.asarray(image.convert("RGB"))


def editor(background, *layers) -> dict:
    return {"background": handle_file(str(background)),
            "layers": [handle_file(str(layer)) for layer in layers], "composite": None}


def http_inpaint(client, background, *layers, **settings):
    """(original, result) pixels of an /inpaint run."""
    result = client.predict(mask_editor=editor(background, *layers), prompt="a window",
                            api_name="/inpaint", **{"seed": 5, "mask_feather": 0, **FAST,
                                                    **settings})
    return pixels(result[4]), pixels(result[5])


def python_inpaint(manager, image, mask, **settings) -> np.ndarray:
    request = InpaintRequest(image=image, mask=mask, prompt="a window",
                             **{"seed": 5, "mask_feather": 0, **QUICK, **settings})
    return pixels(run(inpaint(request, manager))[1].images[0])


def assert_repainted_only(before, after, box) -> None:
    """The pixels that changed lie in `box` and cover nearly all of it."""
    inside = box_mask((before.shape[1], before.shape[0]), box)
    moved = changed(before, after)
    assert not moved[~inside].any(), f"{moved[~inside].sum()} pixels changed outside the box"
    assert moved[inside].mean() > 0.9, "the box was not repainted"


# --- 1. orientation: every picture is decoded as a viewer shows it -----------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_on_decode(orientation):
    upright_pixels = np.random.default_rng(orientation).integers(0, 256, (3, 5, 3), np.uint8)
    data = with_orientation(Image.fromarray(upright_pixels), orientation)
    stored = Image.open(io.BytesIO(data))
    for source in (data, io.BytesIO(data), stored):
        assert np.array_equal(pixels(load_image(source)), upright_pixels), source
    once = open_image(data)
    assert once.size == (5, 3) and upright(once) is once  # the tag is gone: no second turn
    assert open_image(data, decode=False).size == stored.size  # the header alone: as stored


@pytest.mark.parametrize(("photo", "layer", "size"), PHOTOS, ids=["portrait", "square"])
def test_a_phone_photo_is_inpainted_upright_in_python(manager, photo, layer, size):
    shown = as_viewer_shows(photo)
    result = python_inpaint(manager, photo, layer)
    assert result.shape == (size[1], size[0], 3)
    assert_repainted_only(shown, result, PAINTED_BOX)
    for image, mask in ((Image.open(photo), layer),  # a PIL image opened as stored
                        (photo.read_bytes(), Image.open(layer))):
        checked, _ = validate(InpaintRequest(image=image, mask=mask, prompt="x"))
        assert np.array_equal(pixels(checked.image), shown)
        assert np.array_equal(checked.mask, box_mask(size, PAINTED_BOX))


def test_ranking_scores_a_photo_as_it_looks(manager):
    stored = Image.open(PORTRAIT)
    sideways = Image.fromarray(np.asarray(stored.convert("RGB")))  # the pixels, no EXIF
    scores = rank([stored, Image.fromarray(as_viewer_shows(PORTRAIT)), sideways], "a cat",
                  manager)
    assert scores[0] == scores[1] != scores[2]


def test_the_editors_own_conversion_turns_photos_upright(tmp_path):
    """What Gradio's ImageMask hands the handler (HTTP, send-to, examples) after its
    preprocessing: the picture upright, the mask painted on the upright view fitting it."""
    from glide_ui.ui.editor import editor_value, mask_editor
    from glide_ui.ui.inpaint import example_rows

    component = mask_editor(elem_id="field-editor")
    values = {"send to inpaint": editor_value(str(PORTRAIT)),
              "an example row": {"background": str(PORTRAIT),
                                 "layers": [str(PORTRAIT_MASK)], "composite": None},
              **{f"example {i}": row[0] for i, row in enumerate(example_rows())}}
    for name, value in values.items():
        handed = component.preprocess(component.postprocess(value))
        background = handed["background"]
        assert background.size == load_image(value["background"]).size, name
        mask = mask_from_editor(handed, background.size)  # fits: no size error
        assert mask.shape == background.size[::-1]
    assert values["send to inpaint"]["layers"][0].size == (300, 400)  # the upright size


def test_png_info_shows_a_turned_png_upright(tmp_path):
    from glide_ui.ui.png_info import describe

    recipe = Recipe("text2im", "a lighthouse", 3, {"guidance_scale": 3.0})
    shown = Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 30, 3), np.uint8))
    path = tmp_path / "turned.png"
    path.write_bytes(png_with_text(with_orientation(shown, 6), [text_chunk(b"tEXt", PNG_RECIPE_KEY,
                                                       recipe.to_json())], after_data=False))
    image, _, recipe_json, message = describe(str(path))
    assert image.size == (30, 20) and Recipe.from_json(recipe_json) == recipe
    assert "Generate" in message


@pytest.mark.parametrize(("photo", "layer", "size"), PHOTOS, ids=["portrait", "square"])
def test_a_phone_photo_is_inpainted_upright_over_http(client, photo, layer, size):
    original, result = http_inpaint(client, photo, layer)
    assert original.shape == result.shape == (size[1], size[0], 3)
    assert np.array_equal(original, as_viewer_shows(photo))
    assert_repainted_only(original, result, PAINTED_BOX)


def test_ranking_over_http_scores_a_photo_as_it_looks(client, tmp_path):
    upright_copy = tmp_path / "upright.png"
    Image.fromarray(as_viewer_shows(PORTRAIT)).save(upright_copy)
    scores = [client.predict(images=[{"image": handle_file(str(path))}], prompt="a cat",
                             api_name="/rank")[0]["caption"] for path in (PORTRAIT, upright_copy)]
    assert scores[0] == scores[1]


# --- 2. one meaning for a mask ---------------------------------------------------------------


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    return mask_forms(tmp_path_factory.mktemp("masks"))


def test_every_mask_form_means_the_white_box(forms):
    expected = box_mask((333, 177), WHITE_BOX)
    for name, path in forms.items():
        for value in (path, Image.open(path), {"background": PICTURE, "layers": [path]}):
            assert np.array_equal(mask_from_editor(value, (333, 177)), expected), name
    grey = np.asarray(Image.open(OPAQUE_MASK))
    arrays = {"bool": grey > 0, "0/1": (grey > 0).astype(np.uint8), "levels": grey,
              "floats": grey / 255.0, "RGBA opaque": np.asarray(Image.open(OPAQUE_MASK)
                                                                .convert("RGBA"))}
    for name, array in arrays.items():
        assert np.array_equal(mask_from_editor(array), expected), name


def test_the_threshold_is_mid_grey():
    probes = [0, 63, 64, 100, 127, 128, 150, 191, 192, 255]
    levels = np.zeros((4, 10), np.uint8)  # mostly black, as a mask is: edges are a few pixels
    levels[0] = probes
    assert mask_from_editor(levels)[0].tolist() == [level >= 128 for level in probes]
    alpha = np.zeros((1, 3, 4), np.uint8)
    alpha[0, :, 3] = (0, 1, 255)  # a transparent layer: any paint counts, however faint
    assert mask_from_editor(alpha).tolist() == [[False, True, True]]


def test_masks_that_cannot_be_read_one_way_are_refused(tmp_path, manager):
    for path, message in unreadable_masks(tmp_path).values():
        with pytest.raises(RequestError, match=message):
            mask_from_editor(path)
        with pytest.raises(RequestError, match=message):  # before any work
            next(inpaint(InpaintRequest(image=PICTURE, mask=path, prompt="x"), manager))
    with pytest.raises(RequestError, match="from 0 to 1"):
        mask_from_editor(np.full((4, 4), 2.0))


def test_an_opaque_mask_repaints_its_white_part_in_python(manager, forms):
    shown = pixels(PICTURE)
    result = python_inpaint(manager, PICTURE, OPAQUE_MASK)
    assert_repainted_only(shown, result, WHITE_BOX)
    assert changed(shown, result).mean() < 0.01
    expected = box_mask((333, 177), WHITE_BOX)
    for name, path in forms.items():  # every form: the same request, so the same pixels
        for mask in (path, {"background": PICTURE, "layers": [path], "composite": None}):
            if isinstance(mask, dict):  # the page reads its editor into an array first
                mask = mask_from_editor(mask)
            checked, _ = validate(InpaintRequest(image=PICTURE, mask=mask, prompt="x"))
            assert np.array_equal(checked.mask, expected), name


def test_an_opaque_mask_repaints_its_white_part_over_http(client, forms):
    original, result = http_inpaint(client, PICTURE, OPAQUE_MASK)
    assert_repainted_only(original, result, WHITE_BOX)
    assert changed(original, result).mean() < 0.01  # not the whole picture (was 1.000)
    for name, path in forms.items():
        assert np.array_equal(http_inpaint(client, PICTURE, path)[1], result), name


def test_unreadable_masks_are_refused_over_http(client, tmp_path):
    for path, message in unreadable_masks(tmp_path).values():
        with pytest.raises(AppError, match=message):
            http_inpaint(client, PICTURE, path)


# --- 3. recipes wherever a PNG keeps them -----------------------------------------------------

RECIPE = Recipe("text2im", "a lighthouse «phare» 灯台", 4242, {"guidance_scale": 3.0})
PLACES = [(kind, compressed, after) for kind, compressed in
          ((b"tEXt", False), (b"zTXt", True), (b"iTXt", False), (b"iTXt", True))
          for after in (False, True)]


def recipe_chunks(kind: bytes, compressed: bool) -> list[bytes]:
    text = RECIPE.to_json()
    if kind != b"iTXt":
        text = json.dumps(json.loads(text))  # ASCII escapes: tEXt / zTXt hold Latin-1
    return [text_chunk(kind, PNG_PARAMETERS_KEY, "a lighthouse", compressed),
            text_chunk(kind, PNG_RECIPE_KEY, text, compressed)]


@pytest.mark.parametrize(("kind", "compressed", "after"), PLACES,
                         ids=[f"{k.decode()}{'-z' if c else ''}-{'after' if a else 'before'}"
                              for k, c, a in PLACES])
def test_the_recipe_is_found_in_any_text_chunk_before_or_after_the_data(kind, compressed,
                                                                       after):
    data = png_with_text(Image.new("RGB", (8, 8), (1, 2, 3)), recipe_chunks(kind, compressed),
                         after)
    assert read_recipe(data) == RECIPE
    assert read_png_text(data)[PNG_PARAMETERS_KEY] == "a lighthouse"


def test_the_field_file_with_text_after_the_data():
    assert read_recipe(RECIPE_AFTER_DATA) == read_recipe(RECIPE_CONTROL) is not None
    assert read_recipe(RECIPE_AFTER_DATA).seed == 4242


def test_the_image_data_is_not_decoded_to_read_the_recipe():
    damaged = png_with_text(Image.new("RGB", (8, 8)), recipe_chunks(b"zTXt", True), True,
                            data=b"not zlib at all")
    with pytest.raises(RequestError, match="damaged"):
        load_image(damaged)
    assert read_recipe(damaged) == RECIPE  # found without touching the pixels
    huge = ihdr_only(20_000, 20_000, recipe_chunks(b"tEXt", False))
    with pytest.raises(RequestError, match="too large"):
        read_recipe(huge)  # over the limit: refused on the header


def test_bad_text_chunks_are_skipped():
    bomb = text_chunk(b"zTXt", PNG_RECIPE_KEY, " " * (8 << 20))  # inflates to 8 MB
    bad_crc = bytearray(text_chunk(b"tEXt", PNG_RECIPE_KEY, "{}"))
    bad_crc[-1] ^= 0xFF
    data = png_with_text(Image.new("RGB", (8, 8)), [bomb, bytes(bad_crc),
                                                   *recipe_chunks(b"iTXt", True)], True)
    assert read_recipe(data) == RECIPE


def test_png_info_over_http_finds_text_after_the_data(client, tmp_path):
    variant = tmp_path / "ztxt-after.png"
    variant.write_bytes(png_with_text(Image.new("RGB", (8, 8)), recipe_chunks(b"zTXt", True),
                                      True))
    for path, seed in ((RECIPE_AFTER_DATA, 4242), (variant, RECIPE.seed)):
        _, parameters, recipe_json, message = client.predict(path=handle_file(str(path)),
                                                             api_name="/png_info")
        assert f"Made by the **Generate** tab, seed {seed}" in message
        assert Recipe.from_json(recipe_json).seed == seed


# --- 4. restore means reproduce ---------------------------------------------------------------

INPAINT_MASK = box_mask((333, 177), (140, 60, 190, 110))
NON_DEFAULT = {  # every setting of each pipeline off its default
    "text2im": Text2ImRequest(prompt="a red lighthouse", seed=77, guidance_scale=4.5,
                              base_respacing="ddim3", sampler="ddim", upsample=True,
                              upsample_respacing="2", upsample_temp=0.9,
                              upsample_sampler="ancestral", preview_interval=3600),
    # The upsampler's settings are the same widgets in every tab: run once (above), only
    # carried here.
    "clip_guided": ClipGuidedRequest(prompt="a red cube", seed=12, clip_source="openai",
                                     clip_scale=2.5, openai_clip_model="RN50",
                                     base_respacing="2,2", sampler="ddim", upsample=False,
                                     upsample_respacing="2", upsample_temp=0.95,
                                     upsample_sampler="ancestral", preview_interval=3600),
    "inpaint": InpaintRequest(image=PICTURE, mask=INPAINT_MASK, prompt="a window", seed=31,
                              guidance_scale=6.0, base_respacing="ddim4", sampler="ddim",
                              upsample=False, upsample_respacing="2", upsample_temp=0.95,
                              upsample_sampler="ddim", mask_grow=3, mask_feather=2,
                              preview_interval=3600, mask_invert=True,
                              mask_shape="ellipse:10,10,60,40"),
    "outpaint": OutpaintRequest(image=PICTURE, prompt="a harbour", left=24, top=8, right=0,
                                bottom=0, aspect_ratio="", blend=5, seed=8,
                                guidance_scale=4.0, base_respacing="ddim3", sampler="ddim",
                                upsample=False, upsample_respacing="2", upsample_temp=0.95,
                                upsample_sampler="ddim", preview_interval=3600),
}
PIPELINES = {"text2im": text2im, "clip_guided": clip_guided, "inpaint": inpaint,
             "outpaint": outpaint}


@pytest.mark.parametrize("pipeline", list(NON_DEFAULT))
def test_a_recipe_read_from_its_png_reproduces_the_image_in_python(manager, pipeline):
    _, made = run(PIPELINES[pipeline](NON_DEFAULT[pipeline], manager))
    recipe = read_recipe(png_bytes(made.images[0], made.recipes[0]))
    inputs = {"inpaint": {"image": PICTURE, "mask": INPAINT_MASK},
              "outpaint": {"image": PICTURE}}.get(pipeline, {})
    again = request_from_recipe(recipe, preview_interval=3600, **inputs)
    _, replay = run(PIPELINES[pipeline](again, manager))
    assert np.array_equal(pixels(replay.images[0]), pixels(made.images[0]))
    values, left = restore_plan(recipe)
    assert left == [] and restore_warnings(recipe, manager, left,
                                           _inputs(made.recipes[0])) == []


def _inputs(recipe: Recipe) -> dict | None:
    keys = ("image_sha256", "mask_sha256")
    return {key: recipe.settings[key] for key in keys if key in recipe.settings} or None


def test_every_recipe_setting_has_a_widget_in_its_tab(manager):
    """The page can hold every setting a recipe carries: restore leaves nothing behind."""
    import gradio as gr

    from glide_ui.ui import clip_guided as clip_tab
    from glide_ui.ui import generate
    from glide_ui.ui import inpaint as inpaint_tab
    from glide_ui.ui import outpaint as outpaint_tab
    from glide_ui.ui.backend import Backend
    from glide_ui.ui.png_info import PIPELINE_TABS

    with gr.Blocks():
        handles = {h.tab_id: h for h in (generate.build(Backend(manager)),
                                         clip_tab.build(Backend(manager)),
                                         inpaint_tab.build(Backend(manager)),
                                         outpaint_tab.build(Backend(manager)))}
    for pipeline, request in NON_DEFAULT.items():
        settings = recipe_settings(validate(request)[0], manager)  # as a run records them
        values, left = restore_plan(Recipe(pipeline, request.prompt, 1, settings))
        assert left == [], pipeline
        assert set(values) <= set(handles[PIPELINE_TABS[pipeline]].controls), pipeline


def test_what_cannot_be_restored_is_said(manager):
    recipe = Recipe("inpaint", "a hat", 1,
                    {"device": "cuda:0", "dtype": "float16", "image_size": [640, 480],
                     "image_sha256": "0" * 64, "mask_sha256": "1" * 64, "guidance_scale": 5.0,
                     "a_future_knob": 2},
                    models={"base-inpaint": "ab" * 32}, version="9.9")
    values, left = restore_plan(recipe)
    assert left == ["a_future_knob"]
    said = " ".join(restore_warnings(recipe, manager, left, None))
    for words in ("made on cuda:0 in float16", "other weights for base-inpaint",
                  "glide-ui 9.9", "no setting for a_future_knob", "640 x 480 pixels",
                  "paint the same mask"):
        assert words in said, words
    same_picture = {"image_sha256": "0" * 64, "mask_sha256": "2" * 64}
    assert "the mask is not" in " ".join(restore_warnings(recipe, manager, [], same_picture))


def test_an_outpainting_restore_checks_the_picture_loaded(manager):
    recipe = Recipe("outpaint", "x", 1, {"image_size": [333, 177], "image_sha256": "0" * 64,
                                         "right": 10, "blend": 8})
    # (A recipe from before the negative prompt clears the tab's: it was made without.)
    assert restore_plan(recipe) == ({"prompt": "x", "seed": 1, "batch_size": 1, "right": 10,
                                     "blend": 8, "negative_prompt": ""}, [])
    assert "load the same picture (333 x 177 pixels)" in \
        " ".join(restore_warnings(recipe, manager, [], None))
    assert restore_warnings(recipe, manager, [], {"image_sha256": "0" * 64}) == []


def test_the_weights_are_compared_without_fetching_a_file(tmp_path):
    from glide_ui.checkpoints import get_spec

    official = ModelManager(model_set="official", device="cpu", checkpoints_dir=tmp_path,
                            cache_dir=tmp_path)
    assert official.known_checkpoint_id("ViT-B/32") == get_spec("ViT-B/32").sha256
    assert list(tmp_path.iterdir()) == []  # nothing fetched or hashed
    tiny = Recipe("text2im", "x", 1, {}, models={"base": "tiny-random-seed-0"})
    assert "other weights for base" in " ".join(restore_warnings(tiny, official, []))


def test_a_respacing_goes_back_whole_into_the_widgets():
    recipe = read_recipe(RECIPE_DDIM10)
    values = widget_values(recipe)
    assert values["steps"] == 10 and values["base_respacing"] == "ddim10"
    assert request_fields(recipe.pipeline, values)["base_respacing"] == "ddim10"
    plain = widget_values(Recipe("text2im", "x", 1, {"base_respacing": "25"}))
    assert plain["steps"] == 25 and plain["base_respacing"] == ""
    fast = widget_values(Recipe("text2im", "x", 1, {"base_respacing": "fast27"}))
    assert fast["steps"] == 27 and fast["base_respacing"] == "fast27"


def test_the_ddim10_field_recipe_reproduces_its_pixels_in_fp32():
    """The file was made with the tiny models in fp32; a fp32 run of its recipe gives its
    pixels (loosely: fp32 kernels differ between CPUs), and reading 'ddim10' as 10 evenly
    spaced steps (what the page did) gives another image."""
    fp32 = ModelManager(model_set="tiny", device="cpu", dtype="fp32")
    recipe = read_recipe(RECIPE_DDIM10)
    expected = pixels(RECIPE_DDIM10).astype(int)
    _, restored = run(text2im(request_from_recipe(recipe, preview_interval=3600), fp32))
    assert np.abs(pixels(restored.images[0]) - expected).mean() < 0.5
    wrong = request_from_recipe(recipe, preview_interval=3600, base_respacing="10")
    _, ten = run(text2im(wrong, fp32))
    assert np.abs(pixels(ten.images[0]) - expected).mean() > 5


HTTP_RUNS = {  # endpoint -> non-default settings (keyword names of the API)
    "/generate": dict(prompt="a red lighthouse", seed=77, guidance_scale=4.5, sampler="ddim",
                      steps=5, base_respacing="ddim5", upsample=True, upsample_steps="2",
                      upsample_temp=0.9, upsample_sampler="ancestral"),
    "/clip_guided": dict(prompt="a red cube", seed=12, guidance_scale=2.5,
                         clip_source="openai", openai_clip_model="RN50", sampler="ddim",
                         steps=4, base_respacing="2,2", upsample=False),
    "/inpaint": dict(prompt="a window", seed=31, guidance_scale=6.0, sampler="ddim", steps=4,
                     base_respacing="ddim4", upsample=True, upsample_steps="2",
                     upsample_temp=0.95, upsample_sampler="ddim", mask_grow=3,
                     mask_feather=2),
}


@pytest.mark.parametrize("endpoint", list(HTTP_RUNS))
def test_a_recipe_read_over_http_reproduces_the_image_over_http(client, endpoint):
    """Run, read the PNG with /png_info, send its settings back under the API's keyword
    names (as Restore settings fills the widgets), compare the pixels."""
    inputs = {"mask_editor": editor(PICTURE, OPAQUE_MASK)} if endpoint == "/inpaint" else {}
    made = client.predict(api_name=endpoint, **inputs, **HTTP_RUNS[endpoint])
    first = made[2][0]["image"]
    recipe_json = client.predict(path=handle_file(first), api_name="/png_info")[2]
    values = widget_values(Recipe.from_json(recipe_json))
    assert values.get("base_respacing") == HTTP_RUNS[endpoint]["base_respacing"]
    again = client.predict(api_name=endpoint, **inputs, **values)
    assert np.array_equal(pixels(again[2][0]["image"]), pixels(first))


def test_the_ddim10_recipe_over_http_is_not_ten_even_steps(client):
    recipe_json = client.predict(path=handle_file(str(RECIPE_DDIM10)), api_name="/png_info")[2]
    values = widget_values(Recipe.from_json(recipe_json))
    restored = pixels(client.predict(api_name="/generate", **values)[2][0]["image"])
    spec = pixels(client.predict(api_name="/generate", **{**values, "base_respacing": "",
                                                           "steps": "ddim10"})[2][0]["image"])
    ten = pixels(client.predict(api_name="/generate", **{**values, "base_respacing": "",
                                                          "steps": 10})[2][0]["image"])
    assert np.array_equal(restored, spec) and not np.array_equal(restored, ten)

