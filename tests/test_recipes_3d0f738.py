"""PNGs made by glide-ui 3d0f738, before the settings schema (tests/fixtures/recipes_3d0f738,
see its make.py): every one reruns to its own pixels from Python and the command line,
and restores into its tab's widgets over HTTP with nothing left behind.

On the CPU kind they were made on the pixels are equal. make.py recorded only torch's
vector level (`cpu_capability`), which an AMD EPYC with AVX512 shares yet sums in another
order; `cpu_kind` (`cpu_kernel_kind`) was added after, the kind they rerun to equal pixels
on. On another kind fp32 kernels sum in another order, so a rerun may differ in the last bits
of a few values and then by a level here and there after 8-bit rounding: there the mean
difference must stay under half a level.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from app_server import ROOT
from gradio_client import Client, handle_file
from PIL import Image

from glide_ui import Glide, read_recipe
from glide_ui.cli import main
from glide_ui.compute import cpu_kernel_kind
from glide_ui.recipe import Recipe
from glide_ui.ui.settings import restore_plan

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "recipes_3d0f738"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
PNGS: dict[str, dict[str, str]] = MANIFEST["pngs"]
SAME_KIND = MANIFEST["cpu_kind"] == cpu_kernel_kind()


def pixels(source) -> np.ndarray:
    if isinstance(source, Image.Image):
        return np.asarray(source.convert("RGB")).astype(int)
    with Image.open(source) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def assert_same_pixels(made, name: str) -> None:
    expected, got = pixels(FIXTURES / name), pixels(made)
    assert got.shape == expected.shape
    if SAME_KIND:
        assert np.array_equal(got, expected), name
    else:
        assert np.abs(got - expected).mean() < 0.5, name


def inputs(name: str) -> dict[str, Path]:
    return {key: (FIXTURES / value if "/" not in value else ROOT / value)
            for key, value in PNGS[name].items()}


@pytest.fixture(scope="module")
def glide() -> Glide:
    return Glide("tiny", device="cpu", dtype="fp32", progress=False)


def test_the_fixtures_cover_every_job():
    jobs = {read_recipe(FIXTURES / name).pipeline for name in PNGS}
    assert jobs == {"text2im", "clip_guided", "inpaint", "outpaint", "sketch", "variations"}


@pytest.mark.parametrize("name", list(PNGS))
def test_python_rerun_gives_the_same_pixels(glide, name):
    output = glide.rerun(FIXTURES / name, **inputs(name))
    assert_same_pixels(output.images[0], name)
    assert output.recipes[0].settings == read_recipe(FIXTURES / name).settings


@pytest.mark.parametrize("name", ["text2im-fast-preset-0.png", "inpaint-grow-feather-0.png",
                                  "sketch-bow-tie-0.png", "outpaint-right-0.png"])
def test_cli_rerun_gives_the_same_pixels(capsys, tmp_path, name):
    given = [arg for key, path in inputs(name).items() for arg in (f"--{key}", str(path))]
    code = main(["rerun", str(FIXTURES / name), *given, "--dtype", "fp32", "--out",
                 str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert_same_pixels(out.split("\t")[0].strip(), name)


@pytest.mark.parametrize("name", list(PNGS))
def test_every_setting_restores_into_a_widget(name):
    _, left = restore_plan(read_recipe(FIXTURES / name))
    assert left == []


@pytest.fixture(scope="module")
def fp32_client():
    from app_server import running_app

    with running_app("--dtype", "fp32") as app:
        yield Client(app.url, verbose=False)


@pytest.mark.parametrize("name", ["text2im-ddim10-0.png", "text2im-unipc-scale-0.png"])
def test_restored_over_http_the_page_makes_the_same_pixels(fp32_client, name):
    """PNG info's recipe, back under the API's keyword names (what Restore settings puts in
    the widgets), run by /generate of an fp32 app."""
    recipe_json = fp32_client.predict(path=handle_file(str(FIXTURES / name)),
                                      api_name="/png_info")[2]
    values, left = restore_plan(Recipe.from_json(recipe_json))
    assert left == []
    made = fp32_client.predict(api_name="/generate", **values)[2][0]["image"]
    assert_same_pixels(made, name)
