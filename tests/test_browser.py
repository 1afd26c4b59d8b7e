"""The page in a real browser: Debian's chromium driven by Playwright, headless, offline.

Against `app.py --models tiny` on 127.0.0.1: generate with previews that visibly change,
stop a run, paint a mask with mouse strokes and inpaint, send a result to inpaint, restore
settings from a PNG, outpaint the example photo, invert a mask. Saves the screenshots the
README shows (docs/screenshots/).
"""

from __future__ import annotations

import io
import time

import numpy as np
from app_server import ASSETS, ROOT
from page_helpers import (
    fast_settings,
    gallery_captions,
    generate,
    image_at,
    load_picture,
    natural_size,
    paint_stroke,
    panel,
    progress_text,
    run_and_watch,
    set_number,
)
from PIL import Image
from playwright.sync_api import Page, expect

from glide_ui.compute import choose_path
from glide_ui.images import read_recipe

SCREENSHOTS = ROOT / "docs" / "screenshots"


# --- helpers ----------------------------------------------------------------------------------


def wait_until_still(scope, quiet: float = 3.0, limit: float = 60.0) -> str:
    """The progress text once it has not changed for `quiet` seconds (fails after `limit`)."""
    deadline = time.monotonic() + limit
    text, since = progress_text(scope), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = progress_text(scope)
        if now != text:
            text, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return text
    raise AssertionError(f"progress kept moving after Stop: {text!r}")


def send_to_inpaint(page: Page, tab) -> None:
    """Click "send to inpaint" and wait until the editor holds the picture.

    A picture set by the server reaches the editor after the click; the editor then sends
    its layers back. A stroke painted before that would land on the old canvas (a person
    could not paint that fast).
    """
    with page.expect_request(lambda request: "component_server" in request.url):
        tab.get_by_role("button", name="Send picked image to Inpaint").click()
    expect(page.locator("#inpaint-editor")).not_to_contain_text("Upload an image")


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    with Image.open(path) as image:
        assert image.width == 1280 and image.height > 600


# --- tests ------------------------------------------------------------------------------------


def test_generate_shows_changing_previews_then_results(page):
    expect(page.locator("#tiny-banner")).to_contain_text("noise, not pictures")
    # The first test of the module: the server has loaded nothing yet (lazy loading).
    expect(panel(page, "Models").locator("#models-panel")).to_contain_text("No model loaded")
    tab, previews = generate(page, "an oil painting of a corgi", seed=42, batch_size=2)
    assert len(previews) >= 2, "the live preview did not change while denoising"
    first, last = (np.asarray(Image.open(io.BytesIO(page.request.get(src).body())))
                   for src in (previews[0], previews[-1]))
    assert not np.array_equal(first, last), "the previews all showed the same picture"
    assert gallery_captions(tab) == ["seed 42", "seed 43"]
    screenshot(page, "generate")


def test_stop_ends_the_run_and_keeps_the_results(page):
    tab, _ = generate(page, "kept results", seed=5)
    set_number(tab, "Base steps", 1000)
    tab.get_by_role("button", name="Generate", exact=True).click()
    expect(tab.locator(".glide-progress .glide-step")).to_contain_text("step")
    tab.get_by_role("button", name="Stop", exact=True).click()
    frozen = wait_until_still(tab)  # the step under way when Stop came may still show
    assert not frozen.startswith("Done")
    assert gallery_captions(tab) == ["seed 5"], "Stop wiped the previous results"
    set_number(tab, "Base steps", 3)
    run_and_watch(tab, "Generate")  # the worker is free again


def test_paint_a_mask_with_the_mouse_and_inpaint(page):
    tab = panel(page, "Inpaint")
    editor = tab.locator("#inpaint-editor")
    expect(editor.get_by_role("button", name="Zoom in")).to_be_visible()  # editor is ready
    editor.locator("input[type=file]").set_input_files(ASSETS / "chelsea.png")
    expect(editor).not_to_contain_text("Upload an image")
    note = tab.locator("#inpaint-mask-note")
    expect(note).to_contain_text("Paint over the part of the picture")
    paint_stroke(page, editor, (0.30, 0.40), (0.45, 0.42))
    paint_stroke(page, editor, (0.65, 0.45), (0.78, 0.47))
    expect(note).to_contain_text("64 x 64")
    expect(tab.locator("#inpaint-mask-preview img")).to_be_visible()
    tab.get_by_label("Prompt for the painted region").fill("a cat wearing sunglasses")
    fast_settings(tab)
    previews = run_and_watch(tab, "Inpaint")
    assert previews, "no live preview while inpainting"
    result = tab.locator("#inpaint-result img")
    expect(result).to_be_visible()
    assert natural_size(result) == Image.open(ASSETS / "chelsea.png").size
    screenshot(page, "inpaint")


def test_an_example_picture_shows_the_model_view_at_once(page):
    tab = panel(page, "Inpaint")
    expect(tab.locator("#inpaint-editor").get_by_role("button", name="Zoom in")).to_be_visible()
    tab.get_by_text("a cat wearing round black sunglasses").click()
    expect(tab.get_by_label("Prompt for the painted region")).to_have_value(
        "a cat wearing round black sunglasses")
    expect(tab.locator("#inpaint-mask-note")).to_contain_text("64 x 64")
    expect(tab.locator("#inpaint-mask-preview img")).to_be_visible()


def test_send_a_result_to_inpaint(page):
    tab, _ = generate(page, "send me", seed=9)
    tab.locator(".glide-gallery .thumbnail-item").first.click()
    send_to_inpaint(page, tab)
    expect(page.get_by_role("tab", name="Inpaint", exact=True)).to_have_attribute(
        "aria-selected", "true")
    inpaint = page.locator(".tabitem:visible").first
    editor = inpaint.locator("#inpaint-editor")
    paint_stroke(page, editor, (0.4, 0.4), (0.6, 0.6))
    expect(inpaint.locator("#inpaint-mask-note")).to_contain_text("64 x 64")
    fast_settings(inpaint, steps=2)
    inpaint.get_by_label("Prompt for the painted region").fill("a hat")
    run_and_watch(inpaint, "Inpaint")
    original = inpaint.locator("#inpaint-original img")
    assert natural_size(original) == (64, 64)  # the sent picture: a 64 px base result


def first_result_png(page: Page, tab, path) -> None:
    """Save the first gallery picture (a PNG with its recipe) at `path`."""
    path.write_bytes(page.request.get(tab.locator(".glide-gallery img").first
                                      .get_attribute("src")).body())


def restore_png(page: Page, png, title: str, shot: str = ""):
    """Drop `png` on PNG info, see it named as made by the `title` tab (a screenshot
    `shot` then), restore it, and return that tab's panel once it is selected."""
    info = panel(page, "PNG info")
    info.locator("#png-info-file input[type=file]").set_input_files(png)
    expect(info.locator("#png-info-message")).to_contain_text(title)
    if shot:
        screenshot(page, shot)
    info.get_by_role("button", name="Restore settings").click()
    expect(page.get_by_role("tab", name=title, exact=True)).to_have_attribute(
        "aria-selected", "true")
    return page.locator(".tabitem:visible").first


def test_restore_settings_from_a_png(page, tmp_path):
    tab, _ = generate(page, "restore me", seed=1234)
    png = tmp_path / "made-here.png"
    first_result_png(page, tab, png)
    recipe = read_recipe(png)
    assert recipe.seed == 1234
    steps = int(recipe.settings["base_respacing"])  # 4, unless a busy page ran the default
    tab.get_by_label("Prompt", exact=True).fill("something else")
    tab.get_by_label("Seed (-1 = random)").fill("-1")
    set_number(tab, "Base steps", steps + 3)
    tab = restore_png(page, png, "Generate", shot="png_info")
    expect(tab.get_by_label("Prompt", exact=True)).to_have_value("restore me")
    expect(tab.get_by_label("Seed (-1 = random)")).to_have_value("1234")
    expect(tab.get_by_label("number input for Base steps")).to_have_value(str(steps))


def test_clip_guided_compares_with_classifier_free(page):
    tab = panel(page, "CLIP-guided")
    tab.get_by_label("Prompt", exact=True).fill("a hedgehog using a calculator")
    tab.get_by_label("Seed (-1 = random)").fill("3")
    tab.get_by_text("Compare with classifier-free guidance", exact=True).click()
    tab.get_by_label("Compare side by side").check()
    fast_settings(tab)
    run_and_watch(tab, "Generate with CLIP guidance")
    captions = gallery_captions(tab)
    assert len(captions) == 2 and "classifier-free" in captions[0] and "CLIP" in captions[1]
    screenshot(page, "clip_guided")


def test_an_error_is_a_message_and_keeps_inputs_and_results(page):
    tab = panel(page, "Inpaint")
    tab.get_by_label("Prompt for the painted region").fill("keep this prompt")
    tab.get_by_role("button", name="Inpaint", exact=True).click()
    expect(page.get_by_text("Upload an image to inpaint first.").first).to_be_visible()
    expect(tab.get_by_label("Prompt for the painted region")).to_have_value("keep this prompt")

    tab = panel(page, "CLIP-guided")
    tab.get_by_label("Prompt", exact=True).fill("a red cube")
    tab.get_by_label("Seed (-1 = random)").fill("8")
    fast_settings(tab)
    run_and_watch(tab, "Generate with CLIP guidance")
    tab.get_by_label("Prompt", exact=True).fill("   ")
    tab.get_by_role("button", name="Generate with CLIP guidance").click()
    expect(page.get_by_text("Write a prompt").first).to_be_visible()
    assert gallery_captions(tab) == ["seed 8"], "the error wiped the results"
    assert progress_text(tab).startswith("Done")
    assert "Traceback" not in page.content()


def test_models_panel_shows_what_is_loaded(page):
    generate(page, "load the base model", seed=1)
    models = panel(page, "Models")
    status = models.locator("#models-panel")
    expect(status).to_contain_text("Device: cpu")
    expect(status).to_contain_text("base")
    default = choose_path("cpu")  # bf16 where the CPU has bf16 hardware, else fp32
    expect(status).to_contain_text(str(default.dtype).removeprefix("torch."))
    expect(status).to_contain_text(f"Compute path: {default.describe()}")
    screenshot(page, "models")


def test_fast_preset_then_pick_and_upsample_one(page):
    tab = panel(page, "Generate")
    if not tab.get_by_label("number input for Base steps").is_visible():
        tab.get_by_text("Advanced", exact=True).click()
    tab.get_by_role("button", name="Fast preset").click()
    for radio in ("glide-sampler", "glide-upsample-sampler"):
        expect(tab.locator(f".{radio}").get_by_label("DPM-Solver++ 2M", exact=True)
               ).to_be_checked()
    expect(tab.get_by_label("number input for Base steps")).to_have_value("15")
    generate(page, "pick one", seed=5, batch_size=2)  # 4 steps, upsampler off
    assert gallery_captions(tab) == ["seed 5", "seed 6"]
    base_url = tab.locator(".glide-gallery img").nth(1).get_attribute("src")
    base = read_recipe(page.request.get(base_url).body())
    assert base.settings["sampler"] == "dpmpp_2m" and base.settings["upsample"] is False
    tab.get_by_label("Pick, then upsample").click()
    page.get_by_role("option", name="2", exact=True).click()
    page.keyboard.press("Escape")
    run_and_watch(tab, "Upsample picked")
    assert gallery_captions(tab) == ["seed 6"]
    image = tab.locator(".glide-gallery img").first
    assert natural_size(image) == (256, 256)
    recipe = read_recipe(page.request.get(image.get_attribute("src")).body())
    assert recipe.seed == 6 and recipe.settings["upsample"] is True
    assert recipe.settings["upsample_sampler"] == "dpmpp_2m"
    assert recipe.settings["upsample_respacing"] == "10"


def test_outpaint_the_example_photo_to_the_right_then_restore_it(page, tmp_path):
    tab = panel(page, "Outpaint")
    tab.locator("#outpaint-image input[type=file]").set_input_files(ASSETS / "chelsea.png")
    set_number(tab, "Right (px)", 128)
    expect(tab.locator("#outpaint-plan-note")).to_contain_text("579 x 300")
    expect(tab.locator("#outpaint-plan img")).to_be_visible()
    tab.get_by_label("Prompt for the extended picture").fill("a cat on a sofa")
    tab.get_by_label("Seed (-1 = random)").fill("7")
    fast_settings(tab, steps=3)
    previews = run_and_watch(tab, "Outpaint")
    assert previews, "no live preview while outpainting"
    assert gallery_captions(tab) == ["seed 7"]
    result = tab.locator("#outpaint-result img")
    expect(result).to_be_visible()
    assert natural_size(result) == (451 + 128, 300)  # wider, at full size
    photo = np.asarray(Image.open(ASSETS / "chelsea.png").convert("RGB"), dtype=np.int16)
    assert np.array_equal(image_at(page, result)[:, :443], photo[:, :443])
    screenshot(page, "outpaint")

    png = tmp_path / "outpainted.png"
    first_result_png(page, tab, png)
    set_number(tab, "Right (px)", 0)
    tab = restore_png(page, png, "Outpaint")
    expect(tab.get_by_label("number input for Right (px)")).to_have_value("128")
    expect(tab.locator(".glide-notes").last).to_contain_text("with the picture loaded gives the")


def red_share(pixels: np.ndarray) -> float:
    """The share of a model view's pixels tinted red (repainted)."""
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return float(((red >= 153) & (green <= 126) & (blue <= 126)).mean())


def test_invert_a_mask_and_the_model_view_flips(page):
    tab = load_picture(page, ASSETS / "chelsea.png")
    paint_stroke(page, tab.locator("#inpaint-editor"), (0.35, 0.45), (0.6, 0.47))
    note, view = tab.locator("#inpaint-mask-note"), tab.locator("#inpaint-mask-preview img")
    expect(note).to_contain_text("64 x 64")
    painted = view.get_attribute("src")
    before = red_share(image_at(page, view))
    tab.get_by_role("button", name="Invert mask").click()
    expect(view).not_to_have_attribute("src", painted)
    after = red_share(image_at(page, view))
    assert before < 0.4 and after > 0.6, (before, after)
    tab.get_by_label("Paint what to keep").check()  # back to the stroke, as what is kept
    expect(view).not_to_have_attribute("src", view.get_attribute("src"))
    assert red_share(image_at(page, view)) < after
