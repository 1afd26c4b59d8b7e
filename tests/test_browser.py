"""The page in a real browser: Debian's chromium driven by Playwright, headless, offline.

Against `app.py --models tiny` on 127.0.0.1: generate with previews that visibly change,
stop a run, paint a mask with mouse strokes and inpaint, send a result to inpaint, restore
settings from a PNG. Saves the screenshots the README shows (docs/screenshots/).
"""

from __future__ import annotations

import io
import shutil
import time

import numpy as np
import pytest
from app_server import ASSETS, ROOT, running_app
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from glide_ui.images import read_recipe

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 120_000
expect.set_options(timeout=60_000)  # a loaded CI machine can be slow to update the page


@pytest.fixture(scope="module")
def app():
    with running_app() as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(app, browser) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url)
    page.wait_for_selector(".glide-progress")
    yield page
    context.close()


# --- helpers ----------------------------------------------------------------------------------


def panel(page: Page, tab: str):
    """Select `tab` and return its panel (only the visible tab's widgets are used)."""
    page.get_by_role("tab", name=tab, exact=True).click()
    return page.locator(".tabitem:visible").first


def set_number(scope, label: str, value: float) -> None:
    field = scope.get_by_label(f"number input for {label}")
    field.fill(str(value))
    field.press("Tab")


def fast_settings(scope, steps: int = 4) -> None:
    """Few base steps, no upsampler: a tiny-model run takes seconds."""
    scope.get_by_text("Advanced", exact=True).click()
    set_number(scope, "Base steps", steps)
    scope.get_by_label("Upsample to 256 px").uncheck()


def progress_text(scope) -> str:
    return scope.locator(".glide-progress .glide-label").first.inner_text()


def preview_src(scope) -> str | None:
    image = scope.locator(".glide-preview img")
    return image.first.get_attribute("src") if image.count() else None


def run_and_watch(scope, button: str) -> list[str]:
    """Click `button`, collect the distinct live-preview images until the run is done."""
    scope.get_by_role("button", name=button, exact=True).click()
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        src = preview_src(scope)
        if src and src not in seen:
            seen.append(src)
        if progress_text(scope).startswith("Done"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"the run did not finish; progress: {progress_text(scope)!r}")


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


def gallery_captions(scope) -> list[str]:
    return scope.locator(".glide-gallery .caption-label").all_inner_texts()


def generate(page: Page, prompt: str, seed: int = -1, batch_size: int = 1) -> tuple:
    tab = panel(page, "Generate")
    tab.get_by_label("Prompt").fill(prompt)
    tab.get_by_label("Seed (-1 = random)").fill(str(seed))
    set_number(tab, "Batch size", batch_size)
    fast_settings(tab)
    return tab, run_and_watch(tab, "Generate")


def paint_stroke(page: Page, editor, start: tuple[float, float], end: tuple[float, float]):
    """Drag the brush from `start` to `end` (fractions of the canvas) with the mouse."""
    box = editor.locator("canvas").first.bounding_box()
    points = [(box["x"] + box["width"] * (start[0] + (end[0] - start[0]) * k / 12),
               box["y"] + box["height"] * (start[1] + (end[1] - start[1]) * k / 12))
              for k in range(13)]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=3)
    page.mouse.up()


def send_to_inpaint(page: Page, tab) -> None:
    """Click "send to inpaint" and wait until the editor holds the picture.

    A picture set by the server reaches the editor after the click; the editor then sends
    its layers back. A stroke painted before that would land on the old canvas (a person
    could not paint that fast).
    """
    with page.expect_request(lambda request: "component_server" in request.url):
        tab.get_by_role("button", name="Send picked image to Inpaint").click()
    expect(page.locator("#inpaint-editor")).not_to_contain_text("Upload an image")


def natural_size(image) -> tuple[int, int]:
    return tuple(image.evaluate("img => [img.naturalWidth, img.naturalHeight]"))


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


def test_restore_settings_from_a_png(page, tmp_path):
    tab, _ = generate(page, "restore me", seed=1234)
    url = tab.locator(".glide-gallery img").first.get_attribute("src")
    png = tmp_path / "made-here.png"
    png.write_bytes(page.request.get(url).body())
    assert read_recipe(png).seed == 1234
    tab.get_by_label("Prompt").fill("something else")
    tab.get_by_label("Seed (-1 = random)").fill("-1")
    info = panel(page, "PNG info")
    info.locator("#png-info-file input[type=file]").set_input_files(png)
    expect(info.locator("#png-info-message")).to_contain_text("Generate")
    screenshot(page, "png_info")
    info.get_by_role("button", name="Restore settings").click()
    expect(page.get_by_role("tab", name="Generate", exact=True)).to_have_attribute(
        "aria-selected", "true")
    tab = page.locator(".tabitem:visible").first
    expect(tab.get_by_label("Prompt")).to_have_value("restore me")
    expect(tab.get_by_label("Seed (-1 = random)")).to_have_value("1234")
    expect(tab.get_by_label("number input for Base steps")).to_have_value("4")


def test_clip_guided_compares_with_classifier_free(page):
    tab = panel(page, "CLIP-guided")
    tab.get_by_label("Prompt").fill("a hedgehog using a calculator")
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
    tab.get_by_label("Prompt").fill("a red cube")
    tab.get_by_label("Seed (-1 = random)").fill("8")
    fast_settings(tab)
    run_and_watch(tab, "Generate with CLIP guidance")
    tab.get_by_label("Prompt").fill("   ")
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
    expect(status).to_contain_text("float32")
    screenshot(page, "models")
