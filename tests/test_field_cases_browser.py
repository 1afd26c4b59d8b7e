"""Field inputs (issue #12) through the real page: Debian's chromium under Playwright against
`app.py --models tiny`. A phone photo stays upright from the editor to the result, a painted
stroke repaints only itself, PNG info finds a recipe stored after the image data, and
PNG info -> Restore settings -> run gives the same pixels in every tab (or the tab's notes
say, before the run, what could not be restored). The Python and HTTP sides are
tests/test_field_cases.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from field_cases import (
    PAINTED_BOX,
    PHOTOS,
    PICTURE,
    RECIPE_AFTER_DATA,
    RECIPE_DDIM10,
    WHITE_BOX,
    as_viewer_shows,
    changed,
    png_with_text,
    text_chunk,
)
from gradio_client import Client
from page_helpers import (
    brush,
    fast_settings,
    image_at,
    load_picture,
    panel,
    run_and_watch,
    set_number,
)
from PIL import Image
from playwright.sync_api import Page, expect

from glide_ui.images import PNG_RECIPE_KEY, read_recipe
from glide_ui.recipe import Recipe

LEVELS = 1.0  # the browser's JPEG decoder may round a level differently from Pillow's


def paint_box(page: Page, tab, size: tuple[int, int], box: tuple[int, int, int, int]) -> None:
    """A short stroke through the middle of `box` (pixels of the picture as shown)."""
    width, height = size
    middle = (box[1] + box[3]) / 2 / height
    brush(page, tab.locator("#inpaint-editor"), size,
          [(box[0] / width + 0.02, middle), (box[2] / width - 0.02, middle)])
    expect(tab.locator("#inpaint-mask-note")).to_contain_text("64 x 64")


def inpaint(tab, prompt: str = "a window") -> None:
    tab.get_by_label("Prompt for the painted region").fill(prompt)
    run_and_watch(tab, "Inpaint")
    expect(tab.locator("#inpaint-result img")).to_be_visible()


# --- 1. orientation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("photo", "layer", "size"), PHOTOS, ids=["portrait", "square"])
def test_a_phone_photo_stays_upright_from_the_editor_to_the_result(page, photo, layer, size):
    tab = load_picture(page, photo)
    fast_settings(tab, steps=2)
    set_number(tab, "Feather (px)", 0)
    paint_box(page, tab, size, PAINTED_BOX)
    inpaint(tab)
    original = image_at(page, tab.locator("#inpaint-original img"))
    result = image_at(page, tab.locator("#inpaint-result img"))
    assert original.shape == result.shape == (size[1], size[0], 3)
    assert np.abs(original - as_viewer_shows(photo)).mean() <= LEVELS  # upright, not sideways
    rows, cols = np.nonzero(changed(original, result))
    left, top, right, bottom = PAINTED_BOX
    assert rows.size and cols.min() >= left - 20 and cols.max() < right + 20
    assert rows.min() >= top - 20 and rows.max() < bottom + 20  # in the top-left box


# --- 2. a mask painted on the page means what it shows -------------------------------------------


def test_a_stroke_repaints_itself_not_the_whole_picture(page):
    tab = load_picture(page, PICTURE)
    fast_settings(tab, steps=2)
    set_number(tab, "Feather (px)", 0)
    paint_box(page, tab, Image.open(PICTURE).size, WHITE_BOX)
    inpaint(tab)
    original = image_at(page, tab.locator("#inpaint-original img"))
    moved = changed(original, image_at(page, tab.locator("#inpaint-result img")))
    assert 0 < moved.mean() < 0.05, f"{moved.mean():.3f} of the picture was repainted"
    rows, cols = np.nonzero(moved)
    assert WHITE_BOX[0] - 30 <= cols.min() and cols.max() < WHITE_BOX[2] + 30


# --- 3. PNG info finds the recipe wherever the PNG keeps it ---------------------------------------


def read_png_info(page: Page, path) -> object:
    info = panel(page, "PNG info")
    clear = info.locator("#png-info-file").get_by_role("button", name="Clear")
    if clear.count():
        clear.click()
    info.locator("#png-info-file input[type=file]").set_input_files(path)
    return info


def test_png_info_finds_text_after_the_image_data(page, tmp_path):
    recipe = Recipe("clip_guided", "a red cube", 5150, {"clip_scale": 2.0})
    variant = tmp_path / "itxt-after.png"
    variant.write_bytes(png_with_text(Image.new("RGB", (16, 16)), [
        text_chunk(b"iTXt", PNG_RECIPE_KEY, recipe.to_json(), compressed=True)], True))
    info = read_png_info(page, RECIPE_AFTER_DATA)
    expect(info.locator("#png-info-message")).to_contain_text(
        "Made by the Generate tab, seed 4242")
    info = read_png_info(page, variant)
    expect(info.locator("#png-info-message")).to_contain_text(
        "Made by the CLIP-guided tab, seed 5150")


# --- 4. restore means reproduce -------------------------------------------------------------------


def first_result(page: Page, tab, folder, name: str):
    """The first gallery image's PNG, saved under `folder`; (path, pixels)."""
    src = tab.locator(".glide-gallery img").first.get_attribute("src")
    path = folder / name
    path.write_bytes(page.request.get(src).body())
    return path, np.asarray(Image.open(path).convert("RGB"))


def choose(tab, radio_class: str, option: str) -> None:
    tab.locator(f".{radio_class}").get_by_label(option, exact=True).check()


def set_advanced(tab, steps: int, respacing: str, sampler: str, upsample_sampler: str) -> None:
    """The "Advanced" fold, upsampler off (a page run of it takes minutes on a busy CPU;
    tests/test_field_cases.py runs it through Python and HTTP): its sampler and temperature
    are still recorded and must come back."""
    fast_settings(tab, steps=steps)
    tab.get_by_label("Base respacing").fill(respacing)
    choose(tab, "glide-sampler", sampler)
    choose(tab, "glide-upsample-sampler", upsample_sampler)


def sampler_chosen(tab, radio_class: str, option: str) -> None:
    expect(tab.locator(f".{radio_class}").get_by_label(option, exact=True)).to_be_checked()


def scramble(tab, prompt_label: str = "Prompt") -> None:
    """Change what a restore must bring back: prompt, seed, steps (the slider clears the
    exact spacing), sampler."""
    tab.get_by_label(prompt_label, exact=True).fill("something else")
    tab.get_by_label("Seed (-1 = random)").fill("-1")
    set_number(tab, "Base steps", 7)
    expect(tab.get_by_label("Base respacing")).to_have_value("")
    choose(tab, "glide-sampler", "Ancestral (as in the paper)")


def restore(page: Page, png, tab_name: str):
    info = read_png_info(page, png)
    expect(info.locator("#png-info-message")).to_contain_text(f"the {tab_name} tab")
    info.get_by_role("button", name="Restore settings").click()
    expect(page.get_by_role("tab", name=tab_name, exact=True)).to_have_attribute(
        "aria-selected", "true")
    tab = page.locator(".tabitem:visible").first
    if not tab.get_by_label("Base respacing").is_visible():
        tab.get_by_text("Advanced", exact=True).click()  # unfold to read the restored values
    return tab


def test_generate_restores_and_reproduces(page, tmp_path):
    tab = panel(page, "Generate")
    tab.get_by_label("Prompt", exact=True).fill("a red lighthouse")
    tab.get_by_label("Seed (-1 = random)").fill("77")
    set_number(tab, "Guidance scale", 4.5)
    set_advanced(tab, 3, "ddim3", "DDIM (deterministic)", "Ancestral (as in the paper)")
    set_number(tab, "Upsample temperature", 0.9)
    run_and_watch(tab, "Generate")
    png, made = first_result(page, tab, tmp_path, "made.png")
    recipe = read_recipe(png)
    assert recipe.settings["base_respacing"] == "ddim3" and recipe.settings["sampler"] == "ddim"
    assert recipe.settings["upsample_sampler"] == "ancestral"
    assert recipe.settings["upsample_temp"] == 0.9 and recipe.settings["guidance_scale"] == 4.5
    scramble(tab)
    choose(tab, "glide-upsample-sampler", "DDIM (deterministic)")
    set_number(tab, "Upsample temperature", 0.997)
    tab = restore(page, png, "Generate")
    expect(tab.get_by_label("Base respacing")).to_have_value("ddim3")
    expect(tab.get_by_label("number input for Base steps")).to_have_value("3")
    sampler_chosen(tab, "glide-sampler", "DDIM (deterministic)")
    sampler_chosen(tab, "glide-upsample-sampler", "Ancestral (as in the paper)")
    expect(tab.get_by_label("number input for Upsample temperature")).to_have_value("0.9")
    expect(tab.locator(".glide-notes").first).to_contain_text("every setting is in place")
    run_and_watch(tab, "Generate")
    assert np.array_equal(first_result(page, tab, tmp_path, "again.png")[1], made)


def test_clip_guided_restores_and_reproduces(page, tmp_path):
    tab = panel(page, "CLIP-guided")
    tab.get_by_label("Prompt", exact=True).fill("a red cube")
    tab.get_by_label("Seed (-1 = random)").fill("12")
    tab.get_by_label("OpenAI CLIP (on the predicted image)").check()
    set_number(tab, "CLIP guidance scale", 2.5)
    set_advanced(tab, 4, "2,2", "DDIM (deterministic)", "Ancestral (as in the paper)")
    model = tab.get_by_label("OpenAI CLIP model")
    model.click()
    page.get_by_role("option", name="RN50", exact=True).click()
    run_and_watch(tab, "Generate with CLIP guidance")
    png, made = first_result(page, tab, tmp_path, "made.png")
    assert read_recipe(png).settings["openai_clip_model"] == "RN50"
    scramble(tab)
    model.click()
    page.get_by_role("option", name="ViT-B/32", exact=True).click()
    tab = restore(page, png, "CLIP-guided")
    expect(tab.get_by_label("OpenAI CLIP model")).to_have_value("RN50")
    expect(tab.get_by_label("Base respacing")).to_have_value("2,2")
    expect(tab.locator(".glide-notes").first).to_contain_text("every setting is in place")
    run_and_watch(tab, "Generate with CLIP guidance")
    assert np.array_equal(first_result(page, tab, tmp_path, "again.png")[1], made)


def test_inpaint_restores_and_reproduces_with_the_same_picture_and_mask(page, tmp_path):
    tab = load_picture(page, PICTURE)
    paint_box(page, tab, Image.open(PICTURE).size, WHITE_BOX)
    set_number(tab, "Grow mask (px)", 3)
    set_number(tab, "Feather (px)", 2)
    set_number(tab, "Guidance scale", 6)
    tab.get_by_label("Seed (-1 = random)").fill("31")
    set_advanced(tab, 3, "ddim3", "DDIM (deterministic)", "DDIM (deterministic)")
    inpaint(tab)
    png, made = first_result(page, tab, tmp_path, "made.png")
    assert read_recipe(png).settings["mask_grow"] == 3
    scramble(tab, "Prompt for the painted region")
    set_number(tab, "Grow mask (px)", 0)
    tab = restore(page, png, "Inpaint")
    expect(tab.locator(".glide-notes").first).to_contain_text(
        "every setting is in place; running with the picture and mask in the editor")
    run_and_watch(tab, "Inpaint")
    assert np.array_equal(first_result(page, tab, tmp_path, "again.png")[1], made)


def test_the_ddim10_field_recipe_restores_as_ddim10(page, app, tmp_path):
    """The field case: restore used to put "10 steps" and make another image."""
    client = Client(app.url, verbose=False)
    dtype = client.predict(api_name="/models_status")["dtype"]
    tab = restore(page, RECIPE_DDIM10, "Generate")
    expect(tab.get_by_label("number input for Base steps")).to_have_value("10")
    expect(tab.get_by_label("Base respacing")).to_have_value("ddim10")
    notes = tab.locator(".glide-notes").first
    if dtype != "float32":  # the file was made in fp32: the page must say it may differ
        expect(notes).to_contain_text("in float32; this server runs on cpu in " + dtype)
    else:
        expect(notes).to_contain_text("every setting is in place")
    run_and_watch(tab, "Generate")
    restored = first_result(page, tab, tmp_path, "restored.png")[1]
    settings = dict(prompt="a lighthouse", seed=11, guidance_scale=3.0, sampler="ddim",
                    upsample=False, api_name="/generate")
    spec = Image.open(client.predict(steps="ddim10", **settings)[2][0]["image"])
    ten = Image.open(client.predict(steps=10, **settings)[2][0]["image"])
    assert np.array_equal(restored, np.asarray(spec.convert("RGB")))
    assert not np.array_equal(restored, np.asarray(ten.convert("RGB")))


def test_what_cannot_be_restored_is_said_before_the_run(page, tmp_path):
    recipe = Recipe("inpaint", "a hat", 8,
                    {"guidance_scale": 5.0, "base_respacing": "ddim25", "device": "cuda:0",
                     "dtype": "float16", "image_size": [640, 480], "image_sha256": "0" * 64,
                     "mask_sha256": "1" * 64, "a_future_knob": 1},
                    models={"base-inpaint": "ab" * 32})
    png = tmp_path / "elsewhere.png"
    png.write_bytes(png_with_text(Image.new("RGB", (16, 16)), [
        text_chunk(b"tEXt", PNG_RECIPE_KEY, recipe.to_json())], after_data=False))
    tab = restore(page, png, "Inpaint")
    notes = tab.locator(".glide-notes").first
    for words in ("running may not give the same image", "made on cuda:0 in float16",
                  "other weights for base-inpaint", "no setting for a_future_knob",
                  "load the same picture (640 x 480 pixels) and paint the same mask"):
        expect(notes).to_contain_text(words)
    expect(tab.get_by_label("Base respacing")).to_have_value("ddim25")
    expect(page.get_by_text("the image may differ").first).to_be_visible()
