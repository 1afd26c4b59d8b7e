"""Bad and awkward input through the real page (issue #7): uploads, the mask editor, prompts.

Debian's chromium under Playwright against `app.py --models tiny` on 127.0.0.1. Each case
asserts what the user sees, then goes into the robustness ledger (tests/robust_cases.py).
The API side of the same cases is tests/test_robust_input.py.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import psutil
import pytest
import robust_files
from page_helpers import (
    UPLOAD_MESSAGE,
    brush,
    chromium,
    fast_settings,
    generate,
    image_at,
    load_picture,
    natural_size,
    open_page,
    panel,
    run_and_watch,
    upload,
)
from PIL import Image
from playwright.sync_api import Page, expect
from robust_cases import record

from glide_ui.images import load_image, read_recipe

ITEM = "bad input"
MESSAGE = UPLOAD_MESSAGE
MB = 1 << 20


@pytest.fixture(scope="module")
def page(app):
    """One page for the module: the cases follow each other as a person's session would."""
    with chromium() as browser, open_page(browser, app.url) as page:
        tab = panel(page, "Inpaint")
        expect(tab.locator("#inpaint-editor").get_by_role("button", name="Zoom in")) \
            .to_be_visible()  # the editor is ready
        fast_settings(tab, steps=2)
        yield page


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("uploads")


# --- files no helper writes yet ---------------------------------------------------------------


def truncated_png(folder: Path) -> Path:
    whole = robust_files.rgb_png(folder, "whole.png").read_bytes()
    path = folder / "truncated.png"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def empty_file(folder: Path) -> Path:
    path = folder / "empty.png"
    path.write_bytes(b"")
    return path


def oversized_file(folder: Path) -> Path:
    return robust_files.big_file(folder, megabytes=27)  # the limit is 25 MiB = 26.2 MB


def transparent_png(folder: Path) -> Path:
    """RGBA: the left half fully transparent (red underneath), the right half opaque."""
    rgba = np.zeros((robust_files.SIZE[1], robust_files.SIZE[0], 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, robust_files.SIZE[0] // 2:] = (20, 120, 200, 255)
    path = folder / "transparent.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def grey_alpha_png(folder: Path) -> Path:
    grey = Image.open(robust_files.rgb_png(folder)).convert("L")
    alpha = Image.new("L", grey.size, 200)
    path = folder / "grey-alpha.png"
    Image.merge("LA", (grey, alpha)).save(path)
    return path


def palette_png(folder: Path) -> Path:
    path = folder / "palette.png"
    Image.open(robust_files.rgb_png(folder)).convert("P", palette=Image.Palette.ADAPTIVE) \
        .save(path)
    return path


# --- page helpers -----------------------------------------------------------------------------


def drop(page: Page, target, path: Path) -> None:
    """Drop `path` onto `target` as a file dragged from the desktop would be."""
    transfer = page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/png"}));
            return transfer;
        }""", [base64.b64encode(path.read_bytes()).decode(), path.name])
    target.dispatch_event("drop", {"dataTransfer": transfer})


def paint_middle(page: Page, tab) -> None:
    brush(page, tab.locator("#inpaint-editor"), robust_files.SIZE, [(0.45, 0.5), (0.55, 0.5)])
    expect(tab.locator("#inpaint-mask-note")).to_contain_text("64 x 64")


def inpaint(tab, prompt: str = "a red apple") -> None:
    tab.get_by_label("Prompt for the painted region").fill(prompt)
    run_and_watch(tab, "Inpaint")
    expect(tab.locator("#inpaint-result img")).to_be_visible()


def no_trace(page: Page) -> None:
    content = page.content()
    assert "Traceback" not in content and 'File "' not in content


class PeakMemory:
    """The server's peak resident memory over a block (Linux: VmHWM, reset first)."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self) -> PeakMemory:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # peak := current
        self.before = psutil.Process(self.pid).memory_info().rss
        return self

    def __exit__(self, *exc) -> None:
        status = Path(f"/proc/{self.pid}/status").read_text()
        peak_kb = next(int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmHWM:"))
        self.rise = peak_kb * 1024 - self.before


# --- tests ------------------------------------------------------------------------------------


# Each message differs from the one before it, so the check cannot pass on a stale one.
BAD_UPLOADS = [  # (case, file builder, message shown, decoded bytes if it were decoded)
    ("text file named .png", robust_files.text_file,
     "The file is not an image that can be read", 0),
    ("truncated PNG", truncated_png, "The image file is damaged or truncated", 0),
    ("zero-byte file", empty_file, "The file is empty (0 bytes)", 0),
    ("27 MB file, over the 25 MiB upload limit", oversized_file, "too large to upload", 0),
    ("51 MP PNG (8000 x 6400)", robust_files.huge_png,
     "The image is too large (8000 x 6400 pixels); the limit is 50 megapixels", 8000 * 6400),
    ("decompression bomb (400 kB PNG of 20000 x 20000)", robust_files.png_bomb,
     "The image is too large (too many pixels)", 20_000 * 20_000),
]


def test_bad_uploads_get_a_message_and_leave_the_page_working(page, app, files):
    tab = load_picture(page, robust_files.rgb_png(files))
    paint_middle(page, tab)
    inpaint(tab)
    result = tab.locator("#inpaint-result img")
    result_src = result.get_attribute("src")
    message = tab.locator(MESSAGE)
    for case, build, shown, decoded_bytes in BAD_UPLOADS:
        path = build(files)
        with PeakMemory(app.pid) as memory:
            upload(tab, path)
            expect(message).to_contain_text(shown)
        if decoded_bytes:  # refused on the header: nothing near the decoded size was allocated
            assert memory.rise < decoded_bytes / 4, \
                f"{case}: server memory rose {memory.rise / MB:.0f} MB"
        # The editor keeps the picture and the mask painted before; the result stays.
        expect(tab.locator("#inpaint-editor")).not_to_contain_text("Upload an image")
        expect(tab.locator("#inpaint-mask-note")).to_contain_text("64 x 64")
        assert result.get_attribute("src") == result_src
        no_trace(page)
        rise = f", server peak memory +{memory.rise / MB:.0f} MB" if decoded_bytes else ""
        record(ITEM, f"upload: {case} (browser)",
               f"refused before the editor loads it: '{message.inner_text()}'; picture, "
               f"mask and result kept{rise}")

    drop(page, tab.locator("#inpaint-editor"), robust_files.text_file(files, "dropped.png"))
    expect(message).to_contain_text("The file is not an image that can be read")
    expect(tab.locator("#inpaint-mask-note")).to_contain_text("64 x 64")
    record(ITEM, "upload: text file dropped on the editor (browser)",
           f"refused: '{message.inner_text()}'; picture and mask kept")

    inpaint(tab, "a green pear")  # the page and the worker still work
    assert result.get_attribute("src") != result_src
    record(ITEM, "after the refused uploads (browser)", "the next inpaint run completes")


AWKWARD_IMAGES = [
    ("animated GIF (first frame)", robust_files.animated_gif),
    ("CMYK JPEG", robust_files.cmyk_jpeg),
    ("16-bit greyscale PNG (I;16)", robust_files.png_16bit),
    ("RGBA PNG, half transparent", robust_files.rgba_png),
    ("RGBA PNG, fully transparent half", transparent_png),
    ("greyscale + alpha PNG (LA)", grey_alpha_png),
    ("palette PNG (P)", palette_png),
]
LEVELS = 1.0  # the picture the run got may differ from Pillow's RGB by rounding only


@pytest.mark.parametrize("case, build", AWKWARD_IMAGES,
                         ids=[case for case, _ in AWKWARD_IMAGES])
def test_awkward_images_are_converted_and_inpainted(page, files, case, build):
    path = build(files)
    tab = load_picture(page, path)
    paint_middle(page, tab)
    inpaint(tab)
    expected = np.asarray(load_image(path), dtype=np.int16)  # transparency on white
    original = image_at(page, tab.locator("#inpaint-original img"))
    assert original.shape == expected.shape
    difference = float(np.abs(original - expected).mean())
    assert difference <= LEVELS, f"{case}: the picture changed by {difference:.1f} levels"
    assert natural_size(tab.locator("#inpaint-result img")) == Image.open(path).size
    no_trace(page)
    record(ITEM, f"upload: {case} (browser)",
           f"converted to RGB (mean difference {difference:.1f} levels from Pillow's), "
           "inpainted, full-size result shown")


def test_empty_mask_is_refused_and_full_mask_runs(page, files):
    tab = load_picture(page, robust_files.rgb_png(files, "plain.png"))
    tab.get_by_label("Prompt for the painted region").fill("nothing painted")
    tab.get_by_role("button", name="Inpaint", exact=True).click()
    expect(page.get_by_text("The mask is empty").first).to_be_visible()
    expect(tab.get_by_label("Prompt for the painted region")).to_have_value("nothing painted")
    no_trace(page)
    record(ITEM, "empty mask: nothing painted (browser)",
           "refused: 'The mask is empty: paint over the part of the image to change.'; "
           "inputs kept")

    editor = tab.locator("#inpaint-editor")
    for row in np.linspace(0.0, 1.0, 11):  # the brush is wide: the strokes overlap
        brush(page, editor, robust_files.SIZE, [(0.05, row), (-0.05, row), (1.05, row)])
    width, height = robust_files.SIZE
    note = tab.locator("#inpaint-mask-note")
    expect(note).to_contain_text(f"({width * height} pixels repainted")
    expect(note).to_contain_text("The whole picture is painted")
    inpaint(tab, "everything new")
    assert natural_size(tab.locator("#inpaint-result img")) == (width, height)
    record(ITEM, "full mask: every pixel painted with the mouse (browser)",
           "the mask note says the whole picture is replaced; the run completes")


PROMPTS = [  # (case, prompt as typed, prompt the recipe must hold)
    ("unicode, emoji and RTL text", "un chat 🐱 déjà vu — قطة على السطح — 猫",
     "un chat 🐱 déjà vu — قطة على السطح — 猫"),
    ("control characters", "a\x07 cat\x1b[31m on a\x0b mat", "a  cat [31m on a  mat"),
]


@pytest.mark.parametrize("case, typed, kept", PROMPTS, ids=[case for case, _, _ in PROMPTS])
def test_odd_prompts_run(page, case, typed, kept):
    tab, _ = generate(page, typed, seed=11)
    recipe = read_recipe(page.request.get(
        tab.locator(".glide-gallery img").first.get_attribute("src")).body())
    assert recipe.prompt == kept
    no_trace(page)
    record(ITEM, f"prompt typed in the page: {case} (browser)",
           f"run completes; the PNG's recipe holds {recipe.prompt!r}")


def test_a_very_long_prompt_shows_the_truncation_warning(page):
    tab, _ = generate(page, "a very long description of a corgi " * 80, seed=12)
    notes = tab.locator(".glide-notes").first
    expect(notes).to_contain_text("longer than 2000 characters")
    expect(notes).to_contain_text("the model reads only the first")
    record(ITEM, "prompt of 2800 characters (browser)",
           "run completes; notes warn of the 2000-character cut and of the tokens ignored")


def test_png_info_and_restore_say_what_is_wrong(page, files):
    info = panel(page, "PNG info")
    info.get_by_role("button", name="Restore settings").click()
    expect(page.get_by_text("Drop a PNG made here first.").first).to_be_visible()
    info.locator("#png-info-file input[type=file]").set_input_files(
        robust_files.text_file(files, "not-a-picture.png"))
    expect(page.get_by_text("is not an image").first).to_be_visible()
    info.locator("#png-info-file").get_by_role("button", name="Clear").click()
    plain = robust_files.rgb_png(files, "no-recipe.png")
    info.locator("#png-info-file input[type=file]").set_input_files(plain)
    expect(info.locator("#png-info-message")).to_contain_text("carries no glide-ui recipe")
    assert "Traceback" not in page.content()
    record(ITEM, "PNG info: restore with no file, a text file, a PNG without recipe (browser)",
           "messages on the page: 'Drop a PNG made here first.', 'not an image', "
           "'carries no glide-ui recipe'", 3)


def test_the_app_still_serves(page, app):
    tab, previews = generate(page, "a normal run at the end", seed=1)
    assert previews
    assert psutil.pid_exists(app.pid)
    record(ITEM, "after every browser case (browser)",
           "a normal Generate run completes; the server process is the one started")


# --- the guard's server half, without a browser -----------------------------------------------


def test_the_upload_check_reads_only_uploaded_files(tmp_path, monkeypatch):
    from glide_ui.ui.editor import check_upload

    uploads = tmp_path / "uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    (uploads / "abc").mkdir(parents=True)
    inside = robust_files.rgb_png(uploads / "abc")
    outside = robust_files.rgb_png(tmp_path)
    assert check_upload(str(inside)) == ""
    assert check_upload(str(outside)) == "That file was not uploaded here."
    assert check_upload(f"{uploads}/abc/../../{outside.name}") == \
        "That file was not uploaded here."
    bomb = robust_files.png_bomb(uploads / "abc")
    assert check_upload(str(bomb)).startswith("The image is too large")


def test_a_16_bit_picture_keeps_its_levels_in_the_editor():
    from glide_ui.ui.editor import mask_editor

    levels = np.arange(256, dtype=np.uint16).reshape(16, 16) * 257
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, format="PNG")  # mode I;16
    picture = mask_editor(elem_id="x").convert_and_format_image(buffer.getvalue(), True)
    assert np.array_equal(np.asarray(picture.convert("L")), levels // 257)
