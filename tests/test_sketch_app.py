"""Sketch and Variations end to end, against one `app.py --models tiny` (the module's app):
the /sketch and /variations endpoints give the Python API's pixels and recipes, the CLI
writes them and reruns them, bad input is a message everywhere, and in Chromium two
coloured strokes painted with the mouse become a sketch edit that a restored PNG remakes
pixel for pixel. Saves docs/screenshots/sketch.png."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import numpy as np
import pytest
from app_server import ASSETS
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from page_helpers import brush, fast_settings, natural_size, panel, run_and_watch, set_number
from PIL import Image
from playwright.sync_api import expect
from test_browser import screenshot
from test_readme import FAST as README_FAST
from test_readme import FAST_FLAGS, code_blocks, in_a_folder_with_the_assets  # noqa: F401

from glide_ui import Glide, RequestError, api, read_recipe
from glide_ui.cli import main
from glide_ui.images import grow_mask, load_image, paint_strokes
from glide_ui.models import ModelManager

PHOTO = ASSETS / "chelsea.png"
FAST = {"steps": 2, "upsample": False}
RED, BLUE = (224, 49, 49), (28, 126, 214)  # two colours of the Sketch tab's palette


@pytest.fixture(scope="module")
def client(app) -> Client:
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def glide(manager) -> Glide:
    return Glide(manager=manager, progress=False)


@pytest.fixture(scope="module")
def strokes_png(tmp_path_factory):
    """A transparent layer with a red and a blue stroke, at the photo's size."""
    layer = np.zeros((300, 451, 4), dtype=np.uint8)
    layer[110:140, 120:220] = (*RED, 255)
    layer[170:190, 250:360] = (*BLUE, 255)
    path = tmp_path_factory.mktemp("sketch") / "strokes.png"
    Image.fromarray(layer, "RGBA").save(path)
    return path


def pixels(source) -> np.ndarray:
    image = source if isinstance(source, Image.Image) else Image.open(source)
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def editor(layers) -> dict:
    return {"background": handle_file(str(PHOTO)),
            "layers": [handle_file(str(layer)) for layer in layers], "composite": None}


# --- HTTP and Python --------------------------------------------------------------------------


def test_sketch_endpoint_gives_the_python_apis_pixels(client, glide, strokes_png):
    updates = list(client.submit(sketch_editor=editor([strokes_png]), prompt="a red kite",
                                 strength=0.6, seed=4, mask_feather=4, api_name="/sketch",
                                 **FAST))
    assert any(isinstance(u[0], str) for u in updates[:-1]), "no preview before the result"
    final = updates[-1]
    out = glide.sketch(PHOTO, strokes_png, "a red kite", strength=0.6, seed=4, mask_feather=4,
                       base_respacing=2, upsample=False)
    assert np.array_equal(pixels(final[4]), pixels(out.images[0]))
    recipe = read_recipe(final[2][0]["image"])
    assert recipe == out.recipes[0] and recipe.pipeline == "sketch"
    assert pixels(final[4]).shape == pixels(PHOTO).shape


def test_variations_endpoint_gives_the_python_apis_pixels(client, glide):
    result = client.predict(picture=handle_file(str(PHOTO)), prompt="a cat", strength=0.5,
                            batch_size=2, seed=8, api_name="/variations", **FAST)
    with pytest.warns(UserWarning, match="centre square"):
        out = glide.variations(PHOTO, "a cat", strength=0.5, seed=[8, 9], base_respacing=2,
                               upsample=False)
    page = [item["image"] for item in result[2]]
    assert [read_recipe(path) for path in page] == out.recipes
    for path, image in zip(page, out.images, strict=True):
        assert np.array_equal(pixels(path), pixels(image))


BAD_INPUTS = [
    ("/sketch", {"strength": 1.5}, "Strength must be between 0 and 1"),
    ("/sketch", {"sketch_editor": "no-strokes"}, "The sketch is empty"),
    ("/sketch", {"sketch_editor": "no-image"}, "Upload an image to sketch on first"),
    ("/variations", {"strength": -0.5}, "Strength must be between 0 and 1"),
    ("/variations", {"picture": None}, "Upload an image to make variations of"),
]


@pytest.mark.parametrize(("endpoint", "params", "message"), BAD_INPUTS,
                         ids=[f"{e}-{m}" for e, _, m in BAD_INPUTS])
def test_bad_input_gives_a_message(client, strokes_png, endpoint, params, message):
    editors = {"no-strokes": editor([]),
               "no-image": {"background": None, "layers": [], "composite": None}}
    values = {"prompt": "x", **FAST}
    if endpoint == "/sketch":
        values["sketch_editor"] = editor([strokes_png])
    else:
        values["picture"] = handle_file(str(PHOTO))
    values.update({key: editors.get(value, value) for key, value in params.items()})
    with pytest.raises(AppError, match=message):
        client.predict(api_name=endpoint, **values)


def test_python_api_refuses_bad_values_by_name(glide, strokes_png):
    with pytest.raises(RequestError, match="Strength must be between 0 and 1"):
        glide.sketch(PHOTO, strokes_png, "x", strength=2)
    with pytest.raises(RequestError, match="The sketch is empty"):
        glide.sketch(PHOTO, None, "x")
    with pytest.raises(RequestError, match="Unknown setting knob"):
        glide.variations(PHOTO, "x", knob=1)


# --- CLI --------------------------------------------------------------------------------------


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_sketch_and_its_rerun(capsys, tmp_path, strokes_png):
    fast = ["--models", "tiny", "--steps", "2", "--no-upsample", "--seed", "3", "--quiet"]
    code, out, _ = run_cli(capsys, "sketch", PHOTO, strokes_png, "a kite", "--strength",
                           "0.5", *fast, "--out", tmp_path)
    assert code == 0
    (made,) = out.split()
    assert read_recipe(made).pipeline == "sketch" and pixels(made).shape == (300, 451, 3)
    composite = tmp_path / "composite.png"
    paint_strokes(load_image(PHOTO), Image.open(strokes_png))[0].save(composite)
    code, _, err = run_cli(capsys, "rerun", made, "--image", composite, "--mask", strokes_png,
                           "--out", tmp_path / "again")
    assert code == 0 and "same pixels as" in err
    code, out, _ = run_cli(capsys, "variations", PHOTO, "a cat", "--strength", "0.4", *fast,
                           "--out", tmp_path)
    assert code == 0 and read_recipe(out.strip()).settings["strength"] == 0.4
    code, _, err = run_cli(capsys, "sketch", PHOTO, strokes_png, "x", "--strength", "2",
                           "--models", "tiny")
    assert code == 1 and err.strip().endswith("Strength must be between 0 and 1, got 2.0.")
    assert len(err.strip().splitlines()) == 1


# --- the page in Chromium ---------------------------------------------------------------------


def pick_colour(editor, rgb) -> None:
    editor.get_by_role("button", name="Color").click()
    editor.locator(f"button.color[style*='rgb({rgb[0]}, {rgb[1]}, {rgb[2]})']").click()
    editor.get_by_role("button", name="Color").click()  # fold the palette away


def result_pixels(page, tab) -> np.ndarray:
    url = tab.locator("#sketch-result img").get_attribute("src")
    return pixels(io.BytesIO(page.request.get(url).body()))


def test_paint_two_coloured_strokes_and_edit_from_the_sketch(page, tmp_path):
    tab = panel(page, "Sketch")
    editor = tab.locator("#sketch-editor")
    expect(editor.get_by_role("button", name="Zoom in")).to_be_visible()  # editor is ready
    editor.locator("input[type=file]").set_input_files(PHOTO)
    expect(editor).not_to_contain_text("Upload an image")
    size = Image.open(PHOTO).size
    pick_colour(editor, RED)
    brush(page, editor, size, [(0.25, 0.35), (0.45, 0.38)])
    pick_colour(editor, BLUE)
    brush(page, editor, size, [(0.55, 0.65), (0.75, 0.62)])
    tab.get_by_label("Prompt for the sketch").fill("a red kite and a blue lake")
    tab.get_by_label("Seed (-1 = random)").fill("11")
    fast_settings(tab, steps=3)

    set_number(tab, "Strength", 0)  # no model runs: the strokes come back as painted
    run_and_watch(tab, "Edit from sketch")
    painted = result_pixels(page, tab)
    photo = pixels(PHOTO)
    changed = (painted != photo).any(axis=2)
    for colour in (RED, BLUE):
        assert (np.abs(painted - colour).max(axis=2) <= 2).sum() > 200, colour
    assert 0.01 < changed.mean() < 0.3, "the strokes are the only change"

    set_number(tab, "Strength", 0.7)
    previews = run_and_watch(tab, "Edit from sketch")
    assert previews, "no live preview while editing"
    result = tab.locator("#sketch-result img")
    assert natural_size(result) == size
    edited = result_pixels(page, tab)
    far = ~grow_mask(changed, 11)  # beyond the feather (8 px) and the strokes' soft edge
    assert np.array_equal(edited[far], photo[far]), "pixels far from the strokes changed"
    assert not np.array_equal(edited[changed], painted[changed])
    screenshot(page, "sketch")

    url = tab.locator(".glide-gallery img").first.get_attribute("src")
    png = tmp_path / "sketch.png"
    png.write_bytes(page.request.get(url).body())
    assert read_recipe(png).pipeline == "sketch"
    tab.get_by_label("Seed (-1 = random)").fill("-1")
    set_number(tab, "Strength", 0.2)
    info = panel(page, "PNG info")
    info.locator("#png-info-file input[type=file]").set_input_files(png)
    expect(info.locator("#png-info-message")).to_contain_text("Sketch")
    info.get_by_role("button", name="Restore settings").click()
    expect(page.get_by_role("tab", name="Sketch", exact=True)).to_have_attribute(
        "aria-selected", "true")
    tab = page.locator(".tabitem:visible").first
    expect(tab.get_by_label("Seed (-1 = random)")).to_have_value("11")
    expect(tab.get_by_label("number input for Strength")).to_have_value("0.7")
    expect(tab.locator(".prose.glide-notes")).to_contain_text("gives the same image")
    run_and_watch(tab, "Edit from sketch")
    assert np.array_equal(result_pixels(page, tab), edited), "the restored run differs"



# --- the README's examples --------------------------------------------------------------------


@pytest.mark.usefixtures("in_a_folder_with_the_assets")
@pytest.mark.parametrize("section", ["Sketch", "Variations"])
def test_the_readme_examples_run(section, app, monkeypatch, capsys):
    """Each section's HTTP, Python and command-line examples as written, but on the tiny
    models with 2 steps per stage (the HTTP one against this module's app, no upsampler)."""
    from gradio_client import Client as RealClient

    predict = RealClient.predict
    monkeypatch.setattr(RealClient, "predict",
                        lambda self, *args, **kw: predict(self, *args, **{**kw, **FAST}))
    real_request = api._request
    monkeypatch.setattr(api, "_request", lambda pipeline, **values: real_request(
        pipeline, **{**values, **README_FAST}))
    monkeypatch.setattr(api, "ModelManager",
                        lambda model_set="official", **kw: ModelManager(model_set="tiny", **kw))
    over_http, in_python = code_blocks(section, "python")
    names: dict = {}
    exec(compile(over_http.replace("http://127.0.0.1:7860/", app.url), "README.md", "exec"),
         names)
    exec(compile(in_python, "README.md", "exec"), names)
    [command] = code_blocks(section, "bash")
    assert main([*shlex.split(command)[1:], *FAST_FLAGS]) == 0, capsys.readouterr().err
    made = sorted(Path("outputs").glob(f"glide-{section.lower()}-*.png"))
    if section == "Sketch":
        assert Image.open(names["full_size"]).size == Image.open(PHOTO).size
        assert Image.open("bow-tie.png").size == Image.open(PHOTO).size
        assert len(made) == 1 and read_recipe(made[0]).settings["strength"] == 0.7
    else:
        assert [item["caption"] for item in names["gallery"]] == ["seed 5", "seed 6"]
        assert [r.seed for r in names["varied"].recipes] == [5, 6]
        assert len(made) == 4  # the Python example's two and the command's two


def test_every_setting_of_their_recipes_has_a_widget_in_its_tab(manager, strokes_png):
    """Restore leaves nothing behind: each recipe setting maps onto a widget of the tab."""
    import gradio as gr

    from glide_ui.pipelines import SketchRequest, VariationsRequest, validate
    from glide_ui.pipelines.common import recipe_settings
    from glide_ui.recipe import Recipe
    from glide_ui.ui import sketch, variations
    from glide_ui.ui.backend import Backend
    from glide_ui.ui.png_info import PIPELINE_TABS
    from glide_ui.ui.settings import restore_plan

    with gr.Blocks():
        handles = {h.tab_id: h for h in (sketch.build(Backend(manager)),
                                         variations.build(Backend(manager)))}
    odd = dict(prompt="x", strength=0.35, guidance_scale=6.0, base_respacing="ddim4",
               sampler="ddim", upsample=False, upsample_respacing="2", upsample_temp=0.9,
               upsample_sampler="heun", filmstrip_frames=3)
    requests = {"sketch": SketchRequest(PHOTO, strokes_png, mask_grow=2, mask_feather=3, **odd),
                "variations": VariationsRequest(PHOTO, **odd)}
    for pipeline, request in requests.items():
        settings = recipe_settings(validate(request)[0], manager)
        values, left = restore_plan(Recipe(pipeline, "x", 1, settings))
        assert left == [], pipeline
        assert set(values) <= set(handles[PIPELINE_TABS[pipeline]].controls), pipeline
        assert values["strength"] == 0.35 and values["base_respacing"] == "ddim4"
