"""The HTTP API of the app, through gradio_client, against `app.py --models tiny` on 127.0.0.1.

Every endpoint is called; previews must stream before the result; Stop (cancel) must end
the work on the server; bad input must come back as a message naming the problem.
"""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
from app_server import ASSETS, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError
from PIL import Image

from glide_ui.images import read_recipe

FAST = {"steps": 3, "upsample": False}  # tiny models, few steps: seconds per request
PHOTO = ASSETS / "chelsea.png"
PHOTO_MASK = ASSETS / "masks" / "chelsea-eyes.png"


@pytest.fixture(scope="module")
def app():
    with running_app("--queue-size", "3") as running:
        yield running


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


def editor_value(background=PHOTO, layers=(PHOTO_MASK,)) -> dict:
    return {"background": handle_file(str(background)),
            "layers": [handle_file(str(layer)) for layer in layers], "composite": None}


def stream(job) -> list[tuple]:
    """Every update a submitted job sends, in order, until it ends."""
    return [update for update in job]


def test_every_endpoint_is_named_with_keyword_parameters(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/generate", "/clip_guided", "/inpaint", "/rank", "/sweep", "/png_info"} <= set(api)
    for name in ("/generate", "/clip_guided", "/inpaint"):
        params = [p["parameter_name"] for p in api[name]["parameters"]]
        assert {"prompt", "seed", "batch_size", "guidance_scale"} <= set(params), name
    assert api["/inpaint"]["parameters"][0]["parameter_name"] == "mask_editor"
    assert [p["parameter_name"] for p in api["/rank"]["parameters"]] == ["images", "prompt"]


@pytest.fixture(scope="module")
def generated(client):
    """One /generate run, batch of 2 from seed 7 with the upsampler: (updates, result)."""
    job = client.submit(prompt="a corgi", batch_size=2, seed=7, guidance_scale=4.0, steps=3,
                        upsample=True, upsample_steps="2", api_name="/generate")
    return stream(job), job.result()


def test_generate_streams_previews_before_the_result(generated):
    updates, result = generated
    previews = [i for i, u in enumerate(updates)
                if isinstance(u[0], str) and not isinstance(u[2], list)]
    finals = [i for i, u in enumerate(updates) if isinstance(u[2], list)]
    assert len(previews) >= 2, "the live preview should update while denoising"
    assert finals == [len(updates) - 1] and previews[0] < finals[0]
    progress_text = " ".join(u[1] for u in updates if isinstance(u[1], str))
    assert "step 1/3" in progress_text and "Upsampler" in progress_text
    assert "Done: 2 image(s)" in result[1]


def test_generate_results_are_png_files_with_their_recipe(generated):
    _, result = generated
    gallery = result[2]
    assert [item["caption"] for item in gallery] == ["seed 7", "seed 8"]
    recipes = [read_recipe(item["image"]) for item in gallery]
    assert [r.seed for r in recipes] == [7, 8]
    assert all(r.pipeline == "text2im" and r.prompt == "a corgi" for r in recipes)
    assert recipes[0].settings["guidance_scale"] == 4.0
    with Image.open(gallery[0]["image"]) as image:
        assert image.format == "PNG" and image.size == (256, 256)


def test_rank_orders_a_gallery_best_first(client, generated):
    _, result = generated
    images = [{"image": handle_file(item["image"]), "caption": item["caption"]}
              for item in result[2]]
    ranked = client.predict(images=images, prompt="a corgi", api_name="/rank")
    scores = [float(item["caption"].split()[1]) for item in ranked]
    assert len(ranked) == 2 and scores == sorted(scores, reverse=True)
    assert sorted(item["caption"].split(" · ")[1] for item in ranked) == ["seed 7", "seed 8"]


def test_generate_can_rank_its_batch(client):
    result = client.predict(prompt="a corgi", batch_size=2, seed=3, rank_with_clip=True,
                            api_name="/generate", **FAST)
    captions = [item["caption"] for item in result[2]]
    scores = [float(caption.split("CLIP ")[1].split()[0]) for caption in captions]
    assert scores == sorted(scores, reverse=True) and len(scores) == 2


def test_sweep_returns_a_labelled_grid(client):
    result = client.predict(prompt="a corgi", sweep_param="guidance_scale",
                            sweep_values="1, 4", seed=5, api_name="/sweep", **FAST)
    captions = [item["caption"] for item in result[2]]
    assert captions == ["guidance 1 · seed 5", "guidance 4 · seed 5"]
    with Image.open(result[0]) as grid:
        assert grid.width > 2 * 64  # both images side by side, with labels


@pytest.mark.parametrize("source", ["glide", "openai"])
def test_clip_guided_with_each_guidance_source(client, source):
    result = client.predict(prompt="a red cube", seed=11, guidance_scale=2.0,
                            clip_source=source, api_name="/clip_guided", **FAST)
    recipe = read_recipe(result[2][0]["image"])
    assert recipe.pipeline == "clip_guided" and recipe.seed == 11
    assert recipe.settings["clip_source"] == source and recipe.settings["clip_scale"] == 2.0


def test_clip_guided_compares_with_classifier_free_from_one_seed(client):
    result = client.predict(prompt="a red cube", seed=2, compare_with_cfg=True, cfg_scale=3.0,
                            api_name="/clip_guided", **FAST)
    recipes = [read_recipe(item["image"]) for item in result[2]]
    assert [r.pipeline for r in recipes] == ["text2im", "clip_guided"]
    assert {r.seed for r in recipes} == {2}
    assert "classifier-free" in result[2][0]["caption"] and "CLIP" in result[2][1]["caption"]


def test_inpaint_takes_the_mask_editor_value_and_keeps_the_rest(client):
    updates = stream(client.submit(mask_editor=editor_value(), prompt="round sunglasses",
                                   seed=4, mask_feather=4, api_name="/inpaint", **FAST))
    final = updates[-1]
    assert any(isinstance(u[0], str) for u in updates[:-1]), "no preview before the result"
    original, result = np.asarray(Image.open(final[4])), np.asarray(Image.open(final[5]))
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    assert result.shape == photo.shape and np.array_equal(original, photo)
    painted = np.asarray(Image.open(PHOTO_MASK).getchannel("A")) > 0
    far = np.ones_like(painted)
    rows, cols = np.nonzero(painted)
    far[max(rows.min() - 40, 0):rows.max() + 40, max(cols.min() - 40, 0):cols.max() + 40] = False
    assert np.array_equal(result[far], photo[far]), "pixels far from the mask changed"
    assert not np.array_equal(result[painted], photo[painted]), "the mask was not repainted"
    assert read_recipe(final[2][0]["image"]).pipeline == "inpaint"


def test_png_info_reads_the_recipe_back(client, generated):
    _, result = generated
    image, parameters, recipe_json, message = client.predict(
        path=handle_file(result[2][0]["image"]), api_name="/png_info")
    assert "Seed: 7" in parameters and '"seed": 7' in recipe_json
    assert "Generate" in message


def test_stop_ends_the_work_and_the_next_request_runs(client, app):
    job = client.submit(prompt="a long run", steps=1000, upsample=False, api_name="/generate")
    for update in job:
        if isinstance(update[0], str):  # the first preview: the model is running
            break
    assert job.cancel()
    deadline = time.monotonic() + 30
    while job.status().code.name != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.status().code.name == "CANCELLED"
    assert server_goes_idle(psutil.Process(app.pid)), "the server kept working after Stop"
    result = client.predict(prompt="after stop", seed=1, api_name="/generate", **FAST)
    assert result[2][0]["caption"] == "seed 1"


def server_goes_idle(server: psutil.Process, window: float = 2.0, limit: float = 60.0) -> bool:
    """Whether the server spends a `window` using under a quarter of one core, within
    `limit` seconds (the step under way when Stop came may take a while to finish)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(server.cpu_times()[:2])
        time.sleep(window)
        if sum(server.cpu_times()[:2]) - before < window / 4:
            return True
    return False


BAD_INPUTS = [
    ("/generate", {"prompt": "x", "batch_size": 0}, "Batch size"),
    ("/generate", {"prompt": "x", "guidance_scale": 99}, "Guidance scale"),
    ("/generate", {"prompt": "x", "steps": 0}, "Base steps"),
    ("/generate", {"prompt": "x", "upsample_steps": "lots"}, "Upsampler steps"),
    ("/clip_guided", {"prompt": "  "}, "Write a prompt"),
    ("/inpaint", {"mask_editor": "empty-mask", "prompt": "x"}, "mask is empty"),
    ("/inpaint", {"mask_editor": "no-image", "prompt": "x"}, "Upload an image"),
    ("/inpaint", {"mask_editor": "not-an-image", "prompt": "x"}, "not an image"),
    ("/sweep", {"prompt": "x", "sweep_values": "a, b"}, "numbers separated by commas"),
]


@pytest.mark.parametrize(("endpoint", "params", "message"), BAD_INPUTS,
                         ids=[f"{e}-{m}" for e, _, m in BAD_INPUTS])
def test_bad_input_gives_a_message(client, tmp_path, endpoint, params, message):
    params = dict(params)
    editors = {"empty-mask": lambda: editor_value(layers=()),
               "no-image": lambda: {"background": None, "layers": [], "composite": None},
               "not-an-image": lambda: editor_value(background=_text_file(tmp_path))}
    if "mask_editor" in params:
        params["mask_editor"] = editors[params["mask_editor"]]()
    with pytest.raises(AppError, match=message):
        client.predict(api_name=endpoint, **params)


def _text_file(folder):
    path = folder / "notes.png"
    path.write_text("this is not a picture")
    return path


def test_a_full_queue_says_so(client):
    jobs = [client.submit(prompt="queue", steps=1000, upsample=False, api_name="/generate")
            for _ in range(6)]  # one runs, three wait (--queue-size 3), the rest are refused
    try:
        deadline = time.monotonic() + 60
        while sum(job.done() for job in jobs) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        refused = [job for job in jobs if job.done()]
        assert len(refused) == 2
        for job in refused:
            with pytest.raises(QueueError, match="Queue is full"):
                job.result()
    finally:
        for job in jobs:
            job.cancel()


# --- app.py flags and the UI's conversions (no server needed) ----------------------------------


def test_auth_from_a_pair_or_a_file(tmp_path):
    from app import read_auth

    assert read_auth("ann:secret:with:colons") == [("ann", "secret:with:colons")]
    users = tmp_path / "users"
    users.write_text("# team\nann:one\n\nbob:two\n")
    assert read_auth(str(users)) == [("ann", "one"), ("bob", "two")]
    for bad in ("no-colon", ":nopass", "nouser:"):
        with pytest.raises(SystemExit, match="user:password"):
            read_auth(bad)


def test_share_without_auth_warns(capsys):
    from app import parse_args, read_auth, warn_if_public

    for flags, warned in ((["--share"], True), (["--share", "--auth", "ann:one"], False),
                          ([], False)):
        args = parse_args(flags)
        warn_if_public(args.share, read_auth(args.auth))
        assert ("--share without --auth" in capsys.readouterr().err) == warned, flags


def test_a_recipe_maps_back_onto_the_widgets():
    from glide_ui.recipe import Recipe
    from glide_ui.ui.settings import widget_values

    clip = Recipe("clip_guided", "a cube", 9, {"clip_scale": 2.5, "base_respacing": "ddim50",
                                               "upsample_respacing": "fast27",
                                               "clip_source": "openai", "device": "cpu"})
    assert widget_values(clip) == {"prompt": "a cube", "seed": 9, "batch_size": 1,
                                   "guidance_scale": 2.5, "steps": 50,
                                   "base_respacing": "ddim50", "upsample_steps": "fast27",
                                   "clip_source": "openai"}
    inpaint = Recipe("inpaint", "a hat", 3, {"guidance_scale": 5.0, "base_respacing": "10,10",
                                             "mask_grow": 4, "mask_feather": 8})
    values = widget_values(inpaint)
    assert values["steps"] == 20 and values["base_respacing"] == "10,10"
    assert values["mask_grow"] == 4 and values["mask_feather"] == 8


def test_models_panel_shows_loaded_models_and_downloads():
    from glide_ui.models import Fetching, LoadedModel, ManagerStatus
    from glide_ui.ui.models_panel import render_status

    status = ManagerStatus("official", "cuda:0", "float16", 8 * 2**30, 770 * 2**20,
                           [LoadedModel("base", "cuda:0", "float16", 770 * 2**20, 1)],
                           [Fetching("upsample", "upsample.pt", 400 * 2**20, 1600 * 2**20)],
                           ["upsample"])
    html = render_status(status)
    assert "<td>base</td><td>cuda:0</td><td>float16</td><td>770.0 MB</td><td>yes</td>" in html
    assert "Downloading upsample.pt" in html and "400.0 MB of 1.56 GB" in html
    assert 'style="width:25.0%"' in html and "Loading <b>upsample</b>" in html
    assert "8.00 GB budget" in html


def test_generate_returns_a_filmstrip_on_request(client):
    result = client.predict(prompt="a corgi", seed=2, filmstrip=True, api_name="/generate",
                            **FAST)
    captions = [item["caption"] for item in result[2]]
    assert captions == ["seed 2", "seed 2 · filmstrip", "seed 2 · contact sheet"]
    with Image.open(result[2][1]["image"]) as webp:
        assert webp.format == "WEBP" and webp.n_frames == 3  # 3 steps < 24 kept frames
    with Image.open(result[2][2]["image"]) as sheet:
        assert sheet.width > 3 * 64
