"""Upscaling on the other fronts: `glide-ui upscale PNG` and `/upscale` over HTTP (the page's
own handler) make the picture x4 with its recipe, take the Fast preset, and refuse a
picture too large, not a picture, or a scale not offered with one clear message."""

from __future__ import annotations

import numpy as np
import pytest
from app_server import ASSETS, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from glide_ui.cli import build_parser, main
from glide_ui.cli.jobs import given_settings
from glide_ui.images import png_bytes, read_recipe
from glide_ui.recipe import Recipe

TINY = ["--models", "tiny"]
STEPS = ["--upsample-respacing", "2"]
TOO_LARGE = ASSETS / "chelsea.png"  # 451 x 300


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def small_picture(folder, size=(64, 64)):
    path = folder / "small.png"
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return path


def not_a_picture(folder):
    path = folder / "notes.png"
    path.write_text("this is not a picture")
    return path


def test_the_command_writes_the_upscaled_png_with_its_recipe(capsys, tmp_path):
    code = main(["upscale", str(small_picture(tmp_path)), "a red fox", *TINY, *STEPS,
                 "--seed", "3", "--out", str(tmp_path / "out")])
    out, _ = capsys.readouterr()
    assert code == 0
    (path,) = [line.split("\t")[0] for line in out.splitlines()]
    with Image.open(path) as image:
        assert image.size == (256, 256)
    recipe = read_recipe(path)
    assert (recipe.pipeline, recipe.prompt, recipe.seed) == ("upscale", "a red fox", 3)


def test_the_fast_preset_sets_only_the_upsamplers_settings():
    command = build_parser().parse_args(["upscale", __file__, "--preset", "fast"])
    assert given_settings(command) == {"upsample_sampler": "dpmpp_2m",
                                       "upsample_respacing": "10", "seed": None,
                                       "batch_size": None}


@pytest.mark.parametrize(("picture", "flags", "message"), [
    (lambda folder: TOO_LARGE, [], "The picture is 451 x 300 pixels; upscaling takes at most "
                                   "256 x 256"),
    (not_a_picture, [], "not an image"),
    (small_picture, ["--scale", "3"], "Scale must be 4 or 2; x3 is not offered"),
])
def test_the_command_refuses_bad_input_in_one_line(capsys, tmp_path, picture, flags, message):
    code = main(["upscale", str(picture(tmp_path)), "x", *TINY, *STEPS, *flags])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if not line.startswith("glide-ui: Loading")]
    assert code == 1 and out == ""
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("glide-ui: error:")


@pytest.fixture(scope="module")
def client():
    with running_app() as app:
        yield Client(app.url, verbose=False)


def test_http_upscales_with_the_prompt_of_the_pictures_recipe(client, tmp_path):
    picture = tmp_path / "made.png"
    rng = np.random.default_rng(6)
    picture.write_bytes(png_bytes(Image.fromarray(rng.integers(0, 256, (64, 64, 3),
                                                                dtype=np.uint8)),
                                  Recipe("text2im", "a hill at dawn", 9, {})))
    made = client.predict(api_name="/upscale", picture=handle_file(str(picture)), prompt="",
                          seed=2, upsample_steps="2")
    (item,) = made[2]
    recipe = read_recipe(item["image"])
    assert (recipe.pipeline, recipe.prompt, recipe.seed) == ("upscale", "a hill at dawn", 2)
    with Image.open(item["image"]) as image:
        assert image.size == (256, 256)


@pytest.mark.parametrize(("picture", "params", "message"), [
    (lambda folder: TOO_LARGE, {}, "upscaling takes at most 256 x 256"),
    (not_a_picture, {}, "not an image"),
    (small_picture, {"scale": 3}, "Scale must be 4 or 2; x3 is not offered"),
    (small_picture, {"overlap": 500}, r"Window overlap \(px\) must be a whole number"),
])
def test_http_refuses_bad_input_with_one_message(client, tmp_path, picture, params, message):
    with pytest.raises(AppError, match=message):
        client.predict(api_name="/upscale", picture=handle_file(str(picture(tmp_path))),
                       prompt="x", **params)
