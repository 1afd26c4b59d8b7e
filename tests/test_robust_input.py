"""Bad input on the HTTP API (issue #7, item 1), against `app.py --models tiny` on 127.0.0.1.

The policy, the same on /generate, /clip_guided, /inpaint, /outpaint and /sweep: numbers out
of range (batch size, steps, scales, temperature, seed, mask sizes) are REFUSED with a message that
names the field, never clamped; text is cleaned (control characters -> spaces, unpaired
surrogates -> "?") and cut where too long, with a warning in the notes; an empty prompt runs
unconditional (said in the notes) where that makes sense and is refused for CLIP guidance
and ranking. Uploads are checked on their header before decoding; unusual image modes are
converted to RGB. The browser side of uploads and masks is tests/test_robust_browser.py.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
import psutil
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from robust_api import FAST, RawApi, editor, said
from robust_cases import record
from robust_files import (
    animated_gif,
    cmyk_jpeg,
    huge_png,
    mask_layer,
    png_16bit,
    png_bomb,
    rgb_png,
    rgba_png,
    text_file,
)

from glide_ui.images import load_image, read_recipe


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def raw(app, client):
    return RawApi(app.url, client)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    return {"picture": rgb_png(folder), "mask": mask_layer(folder),
            "full mask": mask_layer(folder, box="all", name="full.png", opacity=140),
            "full opaque red layer": mask_layer(folder, box="all", name="opaque.png"),
            "empty mask": mask_layer(folder, box="none", name="empty.png"),
            "small mask": mask_layer(folder, size=(40, 30), name="small.png"),
            "RGBA PNG": rgba_png(folder), "CMYK JPEG": cmyk_jpeg(folder),
            "16-bit PNG": png_16bit(folder), "animated GIF": animated_gif(folder),
            "text file named .png": text_file(folder),
            "51 MP PNG (8000 x 6400)": huge_png(folder),
            "decompression bomb (20000 x 20000 PNG, 0.4 MB)": png_bomb(folder)}


# --- numbers: refused, never clamped, on every endpoint that takes them ---------------------

NAN, INF = float("nan"), float("inf")
NUMBER_CASES = {  # field -> (bad values, what the message names)
    "batch_size": ([0, 9, -1, 1e9, 2.5, "3", NAN], "Batch size"),
    "steps": ([0, 1, 10**12, 2.5, "abc", NAN], "Base steps"),
    "guidance_scale": ([-1, 1e6, NAN, INF], "uidance scale"),
    "upsample_temp": ([-0.1, 2.0, "hot", NAN], "Upsample temperature"),
    "seed": ([-2, 2**40, 1.5, "abc", INF], "Seed"),
    "upsample_steps": (["1000000", "lots", ""], "Upsampler steps"),
    "right": ([-1, 5000, 2.5, "wide", NAN], "Extension right"),
    "blend": ([-1, 65, 1.5, NAN], "Blend band"),
}
ENDPOINT_FIELDS = {
    "/generate": ("batch_size", "steps", "guidance_scale", "upsample_temp", "seed",
                  "upsample_steps"),
    "/clip_guided": ("batch_size", "steps", "guidance_scale", "upsample_temp", "seed",
                     "upsample_steps"),
    "/inpaint": ("batch_size", "steps", "guidance_scale", "upsample_temp", "seed",
                 "upsample_steps"),
    "/sweep": ("steps", "guidance_scale", "upsample_temp", "seed", "upsample_steps"),
    "/outpaint": ("batch_size", "steps", "guidance_scale", "upsample_temp", "seed",
                  "upsample_steps", "right", "blend"),
}


def _inputs(endpoint: str, raw: RawApi, files: dict) -> dict:
    if endpoint == "/inpaint":
        return {"mask_editor": {"background": raw.upload(files["picture"]),
                                "layers": [raw.upload(files["mask"])], "composite": None},
                "prompt": "x"}
    if endpoint == "/outpaint":
        return {"image": raw.upload(files["picture"]), "prompt": "x", "right": 64}
    return {"prompt": "x"}


@pytest.mark.parametrize("endpoint", list(ENDPOINT_FIELDS))
def test_numbers_out_of_range_are_refused_with_the_fields_name(raw, files, endpoint):
    inputs = _inputs(endpoint, raw, files)
    for field in ENDPOINT_FIELDS[endpoint]:
        values, label = NUMBER_CASES[field]
        messages = []
        for value in values:
            kind, message = raw.call(endpoint, **{**inputs, field: value})
            assert kind == "error" and label in (message or ""), (field, value, message)
            messages.append(message)
        shown = ", ".join(_shown(v) for v in values)
        record("bad input", f"{field} = {shown} on {endpoint}",
               f"refused: '{messages[0][:70]}'", len(values))


def _shown(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return repr(value) if isinstance(value, (str, int)) else f"{value:g}"


def test_other_fields_out_of_range(raw, files):
    inpaint = _inputs("/inpaint", raw, files)
    cases = [("/inpaint", "mask_grow", -10_000, "Mask grow"),
             ("/inpaint", "mask_feather", 10_000, "Mask feather"),
             ("/inpaint", "mask_shape", "oval:1,2,3,4", "Cannot read the mask shape"),
             ("/outpaint", "aspect_ratio", "16 by 9", "Aspect ratio"),
             ("/clip_guided", "cfg_scale", 99, "Guidance scale"),
             ("/generate", "sampler", "euler", "list of choices"),
             ("/clip_guided", "clip_source", "evil", "list of choices"),
             ("/sweep", "sweep_values", "nan, 1", "finite number"),
             ("/sweep", "sweep_values", "1e6", "Guidance scale"),
             ("/sweep", "sweep_values", "1,2,3,4,5,6,7,8,9", "1 to 8 values"),
             ("/sweep", "sweep_values", "a, b", "numbers separated"),
             ("/sweep", "sweep_param", "batch_size", "list of choices")]
    for endpoint, field, value, label in cases:
        inputs = inpaint if endpoint == "/inpaint" else {"prompt": "x"}
        if endpoint == "/outpaint":
            inputs = {**_inputs(endpoint, raw, files), "right": 0}
        extra = {"compare_with_cfg": True} if field == "cfg_scale" else {}
        kind, message = raw.call(endpoint, **{**inputs, **extra, field: value})
        assert kind == "error" and label in (message or ""), (endpoint, field, value, message)
        record("bad input", f"{field} = {value!r} on {endpoint}", f"refused: '{message[:70]}'")


# --- prompts --------------------------------------------------------------------------------


def _notes(result) -> str:
    return result[3]


def test_empty_prompt_is_unconditional_where_it_makes_sense(client, files):
    for endpoint, extra in (("/generate", {}), ("/sweep", {"sweep_values": "1"}),
                            ("/inpaint", {"mask_editor": editor(files["picture"],
                                                                files["mask"])})):
        for prompt in ("", "   \n\t", None):
            result = client.predict(prompt=prompt, seed=1, api_name=endpoint, **extra, **FAST)
            assert "unconditional" in _notes(result), (endpoint, prompt)
            assert read_recipe(result[2][0]["image"]).prompt == ""
        record("bad input", f"empty / blank / missing prompt on {endpoint}",
               "ran unconditional, notes say '...without a text condition (unconditional)'", 3)
    for prompt in ("", "   \n\t", None):
        with pytest.raises(AppError, match="Write a prompt") as error:
            client.predict(prompt=prompt, seed=1, api_name="/clip_guided", **FAST)
    record("bad input", "empty / blank / missing prompt on /clip_guided", said(error.value), 3)
    gallery = [{"image": handle_file(str(files["picture"]))}]
    for prompt in ("", "  "):
        with pytest.raises(AppError, match="needs a prompt") as error:
            client.predict(images=gallery, prompt=prompt, api_name="/rank")
    record("bad input", "empty prompt on /rank", said(error.value), 2)


def test_prompt_longer_than_the_text_context_is_cut_with_a_warning(client):
    prompt = "a very detailed oil painting of a corgi wearing a hat " * 20  # ~240 tokens
    for endpoint in ("/generate", "/clip_guided"):
        result = client.predict(prompt=prompt, seed=1, api_name=endpoint, **FAST)
        assert "the model reads only the first 128" in _notes(result), endpoint
        assert read_recipe(result[2][0]["image"]).prompt == prompt
    assert "CLIP reads only the first" in _notes(result)
    record("bad input", "prompt of ~240 tokens on /generate and /clip_guided",
           "ran; notes warn '...the model reads only the first 128' (and CLIP's 75)", 2)
    huge = "corgi " * 2000
    result = client.predict(prompt=huge, seed=1, api_name="/generate", **FAST)
    assert "longer than 2000 characters" in _notes(result)
    assert read_recipe(result[2][0]["image"]).prompt == huge[:2000]
    record("bad input", "prompt of 12000 characters", "cut to 2000 with a warning, ran")


def test_unicode_and_control_characters_run_and_round_trip(client, raw):
    prompt = "a\x00corgi\x07 😀🐈‍⬛ \u202eΩ ж 中文\u200b\r\nnext line\ttab"
    cleaned = "a corgi  😀🐈‍⬛ \u202eΩ ж 中文\u200b \nnext line\ttab"
    for endpoint in ("/generate", "/clip_guided", "/sweep"):
        extra = {"sweep_values": "2"} if endpoint == "/sweep" else {}
        result = client.predict(prompt=prompt, seed=5, api_name=endpoint, **extra, **FAST)
        assert read_recipe(result[2][0]["image"]).prompt == cleaned
        assert "Replaced 3 control character(s)" in _notes(result)
    record("bad input", "NUL, BEL, CR, emoji, RTL override, zero-width, CJK in a prompt",
           "ran on /generate, /clip_guided, /sweep; controls -> spaces (warned); recipe "
           "round-trips", 3)
    kind, outputs = raw.call("/generate", prompt="lone \ud800 surrogate", seed=6, **FAST)
    assert kind == "complete"
    path = outputs[2][0]["image"]["path"]
    assert read_recipe(raw.http.get(raw.url + "/file=" + path).content).prompt \
        == "lone ? surrogate"
    record("bad input", "unpaired surrogate in a prompt (raw JSON)", "ran, replaced by '?'")
    result = client.predict(prompt=123, seed=7, api_name="/generate", **FAST)
    assert read_recipe(result[2][0]["image"]).prompt == "123"
    record("bad input", "prompt sent as a number (123)", "taken as the text '123', ran")


# --- uploads --------------------------------------------------------------------------------

REFUSED_UPLOADS = {"text file named .png": "not an image that can be read",
                   "51 MP PNG (8000 x 6400)": "too large (8000 x 6400 pixels)",
                   "decompression bomb (20000 x 20000 PNG, 0.4 MB)": "too large"}


def test_unreadable_or_oversized_uploads_are_refused_before_decoding(app, client, files):
    server = psutil.Process(app.pid)
    for name, message in REFUSED_UPLOADS.items():
        before = server.memory_info().rss
        started = time.monotonic()
        upload = handle_file(str(files[name]))
        with pytest.raises(AppError, match=re.escape(message)) as error:
            client.predict(mask_editor=editor(files[name], files["mask"]), prompt="x",
                           api_name="/inpaint", **FAST)
        with pytest.raises(AppError, match=re.escape(message)):
            client.predict(images=[{"image": upload}], prompt="x", api_name="/rank")
        with pytest.raises(AppError, match=re.escape(message)):
            client.predict(path=upload, api_name="/png_info")
        grew = server.memory_info().rss - before
        assert grew < 100 * 2**20, f"{name}: the server grew by {grew / 2**20:.0f} MB"
        assert time.monotonic() - started < 30
        record("bad input", f"{name} to /inpaint, /rank, /png_info",
               f"{said(error.value, 60)}; server RSS +{max(grew, 0) / 2**20:.0f} MB", 3)


def _inpaint_original(client, files, name) -> np.ndarray:
    result = client.predict(mask_editor=editor(files[name], files["mask"]), prompt="x",
                            seed=1, api_name="/inpaint", **FAST)
    return np.asarray(Image.open(result[4]))


@pytest.mark.parametrize("name", ["RGBA PNG", "CMYK JPEG", "animated GIF", "16-bit PNG"])
def test_unusual_image_modes_are_converted(client, files, tmp_path, name):
    expected = np.asarray(load_image(files[name]))  # RGB: alpha on white, first frame
    as_rgb = tmp_path / "as-rgb.png"
    Image.fromarray(expected).save(as_rgb)
    scores = [client.predict(images=[{"image": handle_file(str(path))}], prompt="a cat",
                             api_name="/rank")[0]["caption"] for path in (files[name], as_rgb)]
    assert scores[0] == scores[1], scores  # ranked exactly as its RGB version
    record("bad input", f"{name} to /rank", "converted to RGB (same CLIP score as its RGB "
           "copy), ran")
    original = _inpaint_original(client, files, name)
    assert original.shape == expected.shape and np.array_equal(original, expected), \
        f"levels {np.unique(original)[:8]}... instead of {np.unique(expected)[:8]}..."
    record("bad input", f"{name} to /inpaint (mask editor)", "converted to RGB (the result's "
           "original is the picture's RGB conversion), ran")


def test_masks_empty_full_or_of_another_size(client, files):
    for layers, what in (((files["empty mask"],), "transparent layer"), ((), "no layer")):
        with pytest.raises(AppError, match="mask is empty") as error:
            client.predict(mask_editor=editor(files["picture"], *layers), prompt="x",
                           api_name="/inpaint", **FAST)
        record("bad input", f"empty mask ({what}) on /inpaint", said(error.value))
    result = client.predict(mask_editor=editor(files["picture"], files["full mask"]),
                            prompt="x", seed=1, api_name="/inpaint", **FAST)
    assert "covers the whole image" in _notes(result)
    record("bad input", "full mask (a layer painted all over at the brush's 55 %) on /inpaint",
           "ran; notes warn 'The mask covers the whole image...'")
    with pytest.raises(AppError, match="opaque colour picture") as error:
        client.predict(mask_editor=editor(files["picture"], files["full opaque red layer"]),
                       prompt="x", api_name="/inpaint", **FAST)
    record("bad input", "a layer of opaque red, no transparent pixel, on /inpaint",
           said(error.value))
    with pytest.raises(AppError, match="40 x 30 pixels but the image is 96 x 80") as error:
        client.predict(mask_editor=editor(files["picture"], files["small mask"]), prompt="x",
                       api_name="/inpaint", **FAST)
    record("bad input", "mask of another size than the picture", said(error.value))
    with pytest.raises(AppError, match="Upload an image") as error:
        client.predict(mask_editor=editor(None), prompt="x", api_name="/inpaint", **FAST)
    record("bad input", "no picture on /inpaint", said(error.value))


def test_too_many_images_to_rank(client, files):
    upload = handle_file(str(files["picture"]))
    with pytest.raises(AppError, match="at most 64 images") as error:
        client.predict(images=[{"image": upload}] * 65, prompt="x", api_name="/rank")
    record("bad input", "65 images to /rank", said(error.value))


def test_the_app_still_serves_after_all_of_it(client):
    result = client.predict(prompt="still here", seed=9, api_name="/generate", **FAST)
    assert read_recipe(result[2][0]["image"]).seed == 9
    record("bad input", "a normal request after every bad one", "ran")
