"""Shared helpers of the browser tests: Debian's chromium under Playwright, and the page's widgets.

The browser is the system's (`/usr/bin/chromium`); Playwright never downloads one.
"""

from __future__ import annotations

import io
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 120_000
UPLOAD_MESSAGE = "#inpaint-editor-upload-message"  # the editor's upload guard says why here
expect.set_options(timeout=60_000)  # a loaded CI machine can be slow to update the page


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless chromium for a test module."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(browser: Browser, url: str,
              login: tuple[str, str] | None = None) -> Iterator[Page]:
    """The app's page at `url` in a fresh browser context, once the page has rendered;
    `login` = (user, password) signs in first (an app started with --auth)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        if login:
            signed = context.request.post(url + "login", form=dict(zip(("username", "password"),
                                                                       login, strict=True)))
            assert signed.ok, signed.text()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector(".glide-progress")
        yield page
    finally:
        context.close()


def panel(page: Page, tab: str):
    """Select `tab` and return its panel (only the visible tab's widgets are used)."""
    page.get_by_role("tab", name=tab, exact=True).click()
    return page.locator(".tabitem:visible").first


def set_number(scope, label: str, value: float) -> None:
    """Type `value` into a number field and wait until the page holds it. A field in an
    accordion just opened can still be mounting on a busy machine and drop what was typed
    (seen in CI: the run then used the default), so the value is typed again then."""
    field = scope.get_by_label(f"number input for {label}")
    for _ in range(3):
        field.fill(str(value))
        field.press("Tab")
        try:
            expect(field).to_have_value(str(value), timeout=5_000)
            return
        except AssertionError:
            continue
    expect(field).to_have_value(str(value))


def fast_settings(scope, steps: int = 4) -> None:
    """Few base steps, no upsampler: a tiny-model run takes seconds."""
    if not scope.get_by_label("number input for Base steps").is_visible():
        scope.get_by_text("Advanced", exact=True).click()  # unfold (a second click folds)
    set_number(scope, "Base steps", steps)
    scope.get_by_label("Upsample to 256 px").uncheck()


def progress_text(scope) -> str:
    return scope.locator(".glide-progress .glide-label").first.inner_text()


def preview_src(scope) -> str | None:
    image = scope.locator(".glide-preview img")
    return image.first.get_attribute("src") if image.count() else None


def run_and_watch(scope, button: str) -> list[str]:
    """Click `button`, collect the distinct live-preview images until the run is done.

    A page that still shows the previous run's "Done" counts only once the progress has
    moved or the results have changed (the click takes a moment to reach the server).
    """
    results_before = gallery_src(scope)
    started = not progress_text(scope).startswith("Done")
    scope.get_by_role("button", name=button, exact=True).click()
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        src = preview_src(scope)
        if src and src not in seen:
            seen.append(src)
        if not progress_text(scope).startswith("Done"):
            started = True
        elif started or gallery_src(scope) != results_before:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"the run did not finish; progress: {progress_text(scope)!r}")


def gallery_src(scope) -> str | None:
    image = scope.locator(".glide-gallery img")
    return image.first.get_attribute("src") if image.count() else None


def gallery_captions(scope) -> list[str]:
    return scope.locator(".glide-gallery .caption-label").all_inner_texts()


def generate(page: Page, prompt: str, seed: int = -1, batch_size: int = 1) -> tuple:
    tab = panel(page, "Generate")
    tab.get_by_label("Prompt", exact=True).fill(prompt)
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


def natural_size(image, timeout_ms: int = 60_000) -> tuple[int, int]:
    """The picture's own size once the browser has decoded it (a result that has just
    arrived may still be loading on a busy machine, and a lazy <img> loads only once it is
    scrolled into view, as a person would); (0, 0) if it never loads."""
    image.scroll_into_view_if_needed()
    return tuple(image.evaluate("""(img, timeout) => {
        const size = () => [img.naturalWidth, img.naturalHeight];
        if (img.complete && img.naturalWidth) return size();
        return new Promise(resolve => {
            img.addEventListener("load", () => resolve(size()), {once: true});
            img.addEventListener("error", () => resolve(size()), {once: true});
            setTimeout(() => resolve(size()), timeout);
        });
    }""", timeout_ms))


def image_at(page: Page, image) -> np.ndarray:
    """The pixels (int16 RGB) of the picture an <img> locator shows."""
    data = page.request.get(image.get_attribute("src")).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


# --- the Inpaint tab's editor -------------------------------------------------------------------


def inpaint_tab(page: Page):
    return panel(page, "Inpaint")


def upload(tab, path: Path) -> None:
    tab.locator("#inpaint-editor input[type=file]").set_input_files(path)


def load_picture(page: Page, path: Path):
    """Upload `path` into an emptied editor and wait until the editor shows it."""
    tab = inpaint_tab(page)
    editor = tab.locator("#inpaint-editor")
    if "Upload an image" not in editor.inner_text():
        editor.get_by_role("button", name="Clear canvas").click()
        expect(editor).to_contain_text("Upload an image")
    # The editor reports its new value to the server (the model's-view preview); a run
    # started before that round trip ends can find no picture on the server.
    with page.expect_response(lambda response: "/run/predict" in response.url):
        upload(tab, path)
    expect(editor).not_to_contain_text("Upload an image")
    expect(tab.locator(UPLOAD_MESSAGE)).to_be_empty()
    return tab


def brush(page: Page, editor, size: tuple[int, int], points: list[tuple[float, float]]):
    """One mouse stroke through `points`, fractions of the picture (which the editor shows
    centred at its zoom); points a little outside 0..1 run past the picture's edge (the
    stroke ends where the pointer leaves the canvas)."""
    editor.scroll_into_view_if_needed()  # the mouse works in the viewport's coordinates
    box = editor.locator("canvas").first.bounding_box()
    zoom = float(re.search(r"(\d+)%", editor.inner_text()).group(1)) / 100
    width, height = size[0] * zoom, size[1] * zoom
    left = box["x"] + (box["width"] - width) / 2
    top = box["y"] + (box["height"] - height) / 2
    spots = [(left + width * x, top + height * y) for x, y in points]
    page.mouse.move(*spots[0])
    page.mouse.down()
    for spot in spots[1:]:
        page.mouse.move(*spot, steps=2)
    page.mouse.up()
