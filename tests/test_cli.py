"""The `glide-ui` command on the tiny models: every subcommand's files, output and exit
status, and bad arguments refused on one line of stderr (never a traceback).

Most runs call `glide_ui.cli.main` in this process (a process per run would load torch each
time); `test_a_real_process_exits_with_one_line` and tests/test_install.py run the command
itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from app_server import ASSETS, ROOT
from file_server import serving
from PIL import Image
from writers import (
    RECIPE,
    TRIALS,
    WRITERS,
    at_once,
    file_in_the_way,
    losses,
    picture,
    unwritable_folder,
)

from glide_ui import Glide, read_recipe
from glide_ui import checkpoints as ckpt
from glide_ui.api import GlideOutput, with_recipe
from glide_ui.cli import build_parser, common, main, parse_serve_args

TINY = ["--models", "tiny"]
FAST = [*TINY, "--steps", "2", "--no-upsample"]
PHOTO = ASSETS / "chelsea.png"
PHOTO_MASK = ASSETS / "masks" / "chelsea-eyes.png"


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path, monkeypatch):
    """Runs without --out write into ./outputs: a temporary folder's."""
    monkeypatch.chdir(tmp_path)


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def paths_in(out: str) -> list[str]:
    return [line.split("\t")[0] for line in out.splitlines()]


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def glide(manager) -> Glide:
    return Glide(manager=manager, progress=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[str]:
    """`glide-ui generate` of two images from seed 5 (run once for several tests)."""
    folder = tmp_path_factory.mktemp("generated")
    code = main(["generate", "a corgi", *FAST, "--seed", "5", "--batch-size", "2",
                 "--guidance-scale", "4", "--out", str(folder), "--quiet"])
    assert code == 0
    return sorted(str(path) for path in folder.glob("*.png"))


def test_generate_writes_pngs_with_recipes_and_prints_their_paths(capsys, tmp_path, glide):
    code, out, err = run_cli(capsys, "generate", "a corgi", *FAST, "--seed", "5",
                             "--batch-size", "2", "--guidance-scale", "4", "--out", tmp_path)
    assert code == 0 and "Loading base..." in err
    paths = paths_in(out)
    assert paths == [str(tmp_path / "glide-text2im-a-corgi-5.png"),
                     str(tmp_path / "glide-text2im-a-corgi-6.png")]
    recipes = [read_recipe(path) for path in paths]
    assert [r.seed for r in recipes] == [5, 6]
    assert recipes[0].settings["guidance_scale"] == 4.0
    assert recipes[0].settings["upsample"] is False
    same = glide.text2im("a corgi", seed=5, batch_size=2, guidance_scale=4.0, base_respacing=2,
                         upsample=False)
    for path, image in zip(paths, same.images, strict=True):
        assert np.array_equal(pixels(path), np.asarray(image))


def test_a_seed_list_and_quiet(capsys, tmp_path):
    code, out, err = run_cli(capsys, "generate", "a fox", *FAST, "--seed", "9,3", "--quiet",
                             "--out", tmp_path)
    assert code == 0 and err == ""
    assert [read_recipe(path).seed for path in paths_in(out)] == [9, 3]


USAGE_ERRORS = [
    ([], "required: COMMAND"),
    (["paint"], "invalid choice: 'paint'"),
    (["generate"], "one of the arguments prompt --prompts is required"),
    (["generate", "x", "--seed", "abc"], "a seed is a whole number"),
    (["generate", "x", "--sampler", "euler"], "invalid choice: 'euler'"),
    (["generate", "x", "--batch-size", "two"], "invalid int value"),
    (["inpaint", "missing.png", "mask.png", "x"], "no such file: missing.png"),
    (["info"], "required: image"),
    (["info", "missing.png"], "no such file"),
    (["download", "--device", "cpu"], "unrecognized arguments: --device"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE_ERRORS)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and message in err and err.startswith("glide-ui")


def black_mask(tmp_path) -> str:
    path = tmp_path / "black.png"
    Image.new("L", Image.open(PHOTO).size, 0).save(path)
    return str(path)


def text_file(tmp_path) -> str:
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    return str(path)


REQUEST_ERRORS = [
    (["generate", "x", *TINY, "--guidance-scale", "99"], "Guidance scale must be between 0"),
    (["generate", "x", *TINY, "--steps", "1"], "Base steps"),
    (["generate", "x", *TINY, "--seed", "1,2", "--batch-size", "3"], "3 but 2 seeds"),
    (["generate", "x", *TINY, "--max-memory", "lots"], "Cannot read 'lots' as a memory size"),
    (["generate", "x", *TINY, "--device", "cpu", "--dtype", "fp16"], "fp16 is for GPUs"),
    (["clip", " ", *TINY], "Write a prompt"),
    (["inpaint", PHOTO, black_mask, "x", *TINY], "The mask is empty"),
    (["inpaint", PHOTO, "rect:1,2", "x", *TINY], "Cannot read the mask shape 'rect:1,2'"),
    (["outpaint", PHOTO, "x", *TINY], "Give how far to extend"),
    (["outpaint", PHOTO, "x", "--aspect", "4:3:1", *TINY], "Aspect ratio"),
    (["info", text_file], "not an image"),
    (["info", PHOTO], "carries no glide-ui recipe"),
    (["rerun", PHOTO], "carries no glide-ui recipe"),
    (["rank", "", PHOTO, *TINY], "needs a prompt"),
    (["download", "nothing"], "Unknown model 'nothing'"),
]


@pytest.mark.parametrize(("argv", "message"), REQUEST_ERRORS)
def test_bad_requests_exit_1_with_one_line(capsys, tmp_path, argv, message):
    argv = [arg(tmp_path) if callable(arg) else arg for arg in argv]
    code, out, err = run_cli(capsys, *argv)
    lines = [line for line in err.splitlines() if not line.startswith("glide-ui: Loading")]
    assert code == 1 and out == ""
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("glide-ui: error:")


def test_an_unexpected_error_is_one_line_unless_traceback_is_asked(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(Glide, "text2im", broken)
    code, _, err = run_cli(capsys, "generate", "x", *TINY)
    assert code == 1 and err == ("glide-ui: error: unexpected error (ZeroDivisionError: "
                                 "division by zero); run with --traceback to see where.\n")
    with pytest.raises(ZeroDivisionError):
        main(["--traceback", "generate", "x", *TINY])
    monkeypatch.setattr(Glide, "text2im", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    code, _, err = run_cli(capsys, "generate", "x", *TINY)
    assert code == 130 and err == "glide-ui: error: stopped.\n"


def test_a_real_process_exits_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "glide_ui", "generate", "x", *TINY,
                             "--guidance-scale", "-1", "--out", str(tmp_path)], cwd=ROOT,
                            capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "glide-ui: error: Guidance scale must be between 0 and 20, got -1.0."]


def test_a_prompt_in_any_script_names_its_file(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "generate", "一只可爱的猫", *FAST, "--seed", "1", "--quiet",
                           "--out", tmp_path)
    assert code == 0 and paths_in(out) == [str(tmp_path / "glide-text2im-一只可爱的猫-1.png")]


LONG = [*TINY, "--steps", "1000"]  # minutes of work, were it started
JOBS = [["generate", "x", *LONG], ["clip", "x", *LONG], ["inpaint", PHOTO, PHOTO_MASK, "x", *LONG],
        ["outpaint", PHOTO, "x", "--right", "64", *LONG],
        ["sketch", PHOTO, PHOTO_MASK, "x", *LONG], ["variations", PHOTO, "x", *LONG],
        ["rerun", PHOTO, *TINY]]
BAD_OUT = {  # the folder, and the reason given
    "under a file": (lambda tmp: file_in_the_way(tmp) / "sub",
                     lambda tmp: f"{tmp / 'a-file'} is a file, not a folder"),
    "a file": (file_in_the_way, lambda tmp: f"{tmp / 'a-file'} is a file, not a folder"),
    "not writable": (unwritable_folder, lambda tmp: "Permission denied"),
}


@pytest.mark.parametrize("case", BAD_OUT)
def test_a_bad_out_is_refused_before_any_model(capsys, monkeypatch, tmp_path, case):
    monkeypatch.setattr(common, "open_glide",
                        lambda *args, **kwargs: pytest.fail("a model was made"))
    folder_of, reason = BAD_OUT[case]
    folder = folder_of(tmp_path)
    for job in JOBS:
        code, out, err = run_cli(capsys, *job, "--out", folder)
        assert (code, out) == (2, ""), job
        assert err == f"glide-ui: error: Cannot save into --out {folder}: " \
                      f"{reason(tmp_path)}.\n", job


def test_a_real_process_refuses_a_bad_out_at_once(tmp_path):
    """Before torch is even imported: no model could have loaded."""
    folder = file_in_the_way(tmp_path) / "sub"
    code = ("import sys, time; from glide_ui.cli import main; start = time.monotonic(); "
            "status = main(sys.argv[1:]); print(time.monotonic() - start, "
            "'torch' in sys.modules); sys.exit(status)")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code, "generate", "a corgi", *TINY,
                             "--steps", "1000", "--out", str(folder)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"glide-ui: error: Cannot save into --out {folder}: " \
                            f"{tmp_path / 'a-file'} is a file, not a folder.\n"
    seconds, torch_imported = result.stdout.split()
    assert torch_imported == "False" and float(seconds) < 1.0, (seconds, wall)


def test_cli_runs_finishing_at_the_same_moment_keep_every_picture(capsys, monkeypatch,
                                                                    tmp_path):
    """`glide-ui generate` runs (threads) whose pictures are ready at once, all of one name
    (the picture is told apart by --guidance-scale): each is written, none over another."""
    now = SimpleNamespace(trial=0, folder=None, barrier=None)

    def made(prompt, rank, guidance_scale, **settings):
        output = GlideOutput([with_recipe(picture(int(guidance_scale), now.trial), RECIPE)],
                             [RECIPE])
        now.barrier.wait()
        return output

    monkeypatch.setattr(common, "open_glide", lambda args, **place: SimpleNamespace(text2im=made))

    def run(writer, barrier):
        now.barrier = barrier
        return main(["generate", "a corgi", "--guidance-scale", str(writer),
                     "--out", str(now.folder), "--quiet"])

    failed = []
    for trial in range(TRIALS):
        now.trial, now.folder = trial, tmp_path / f"trial-{trial}"
        folder = now.folder
        assert at_once(WRITERS, run) == [0] * WRITERS
        printed = capsys.readouterr().out.split()
        problems = losses(folder, [picture(writer, trial) for writer in range(WRITERS)])
        if problems or sorted(printed) != sorted(map(str, folder.glob("*.png"))):
            failed.append(f"trial {trial}: {', '.join(problems)} printed {printed}")
    assert not failed, f"{len(failed)} of {TRIALS} trials lost pictures: {failed[:3]}"


def test_info_shows_the_recipe_as_text_or_json(capsys, generated):
    code, out, _ = run_cli(capsys, "info", generated[0])
    assert code == 0
    lines = out.splitlines()
    assert lines[:3] == ["prompt: a corgi", "pipeline: text2im", "seed: 5"]
    assert "guidance_scale: 4.0" in lines and "model base: tiny-random-seed-0" in lines
    code, out, _ = run_cli(capsys, "info", "--json", generated[0])
    assert code == 0 and json.loads(out) == json.loads(read_recipe(generated[0]).to_json())


def test_rerun_makes_the_same_pixels_on_the_recorded_model_set(capsys, tmp_path, generated):
    # No --models: the recipe says it was made by the tiny models.
    code, out, err = run_cli(capsys, "rerun", generated[1], "--out", tmp_path)
    assert code == 0
    [path] = paths_in(out)
    assert np.array_equal(pixels(path), pixels(generated[1]))
    assert read_recipe(path) == read_recipe(generated[1])
    assert f"same pixels as {generated[1]}." in err


def test_inpaint_and_its_rerun(capsys, tmp_path, glide):
    code, out, _ = run_cli(capsys, "inpaint", PHOTO, PHOTO_MASK, "round sunglasses", *FAST,
                           "--seed", "4", "--mask-feather", "4", "--out", tmp_path)
    assert code == 0
    [path] = paths_in(out)
    expected = glide.inpaint(PHOTO, PHOTO_MASK, "round sunglasses", seed=4, mask_feather=4,
                             base_respacing=2, upsample=False)
    assert np.array_equal(pixels(path), np.asarray(expected.images[0]))
    code, _, err = run_cli(capsys, "rerun", path, "--out", tmp_path)
    assert code == 1 and "needs its image and mask" in err
    code, _, err = run_cli(capsys, "rerun", path, "--image", PHOTO, "--mask", PHOTO_MASK,
                           "--out", tmp_path)
    assert code == 0 and f"same pixels as {path}." in err


def test_clip_with_ranking_and_rank(capsys, tmp_path, glide, generated):
    code, out, _ = run_cli(capsys, "clip", "a red cube", *FAST, "--clip-source", "openai",
                           "--clip-scale", "2", "--seed", "1,2", "--rank", "--out", tmp_path)
    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == 2 and all(label.startswith("CLIP ") for _, label in rows)
    assert read_recipe(rows[0][0]).settings["clip_source"] == "openai"
    code, out, _ = run_cli(capsys, "rank", "a corgi", *generated, PHOTO, *TINY)
    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()]
    scores = glide.rank([*generated, PHOTO], "a corgi")
    expected = sorted(zip(scores, [*generated, str(PHOTO)], strict=True), key=lambda r: -r[0])
    assert rows == [[f"{score:.4f}", path] for score, path in expected]


def test_models_lists_what_is_here_what_is_partial_and_what_is_missing(
        capsys, tmp_path, monkeypatch):
    cache, folder = tmp_path / "cache", tmp_path / "mine"
    cache.mkdir()
    folder.mkdir()
    (cache / "base.pt").write_bytes(b"x" * 3_000_000)
    (cache / "upsample.pt.part").write_bytes(b"x" * 1_000_000)
    (folder / "ViT-B-32.pt").write_bytes(b"x" * 2_000_000)
    (cache / "RN50.pt").write_bytes(b"x" * 1000)  # not used by the app, listed as it is here
    monkeypatch.setenv(ckpt.CACHE_ENV, str(cache))
    code, out, _ = run_cli(capsys, "models", "--checkpoints", folder, "--json")
    assert code == 0
    data = json.loads(out)
    rows = {row["name"]: row for row in data["models"]}
    assert data["cache_dir"] == str(cache) and data["checkpoints_dir"] == str(folder)
    assert rows["base"]["status"] == "cached" and rows["base"]["bytes"] == 3_000_000
    assert rows["upsample"]["status"] == "partly downloaded"
    assert rows["upsample"]["downloaded_bytes"] == 1_000_000
    assert rows["ViT-B/32"]["status"] == "in checkpoints folder"
    assert rows["ViT-B/32"]["used_by"] == ["clip", "rank"]
    assert rows["base-inpaint"]["status"] == "missing" and rows["base-inpaint"]["path"] is None
    assert rows["RN50"]["status"] == "cached"
    code, out, _ = run_cli(capsys, "models", "--checkpoints", folder)
    assert code == 0
    assert "base             cached                2.9 MB" in out
    assert out.splitlines()[-1].startswith("missing: upsample clip/image-enc clip/text-enc "
                                           "base-inpaint upsample-inpaint")
    code, out, _ = run_cli(capsys, "models", *TINY)
    assert code == 0 and "built in" in out and "missing" not in out


def tiny_state_dict_bytes(name: str) -> bytes:
    from glide_ui.models import ModelManager

    buffer = io.BytesIO()
    model = ModelManager("tiny", device="cpu", dtype="fp32").get(name)
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def test_download_fetches_verifies_and_reports(capsys, tmp_path, monkeypatch):
    """Served from 127.0.0.1: under the official text encoder's name, the tiny encoder's
    weights (checked against the tiny architecture); under OpenAI CLIP's, a file with a
    published size and sha256 (checked against them); under the image encoder's, junk."""
    import glide_ui.model_build

    real_config = glide_ui.model_build.clip_config
    monkeypatch.setattr(glide_ui.model_build, "clip_config", lambda tiny=False: real_config(True))
    cache = tmp_path / "cache"
    monkeypatch.setenv(ckpt.CACHE_ENV, str(cache))
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    files = {"/clip_text_enc.pt": tiny_state_dict_bytes("clip/text-enc"),
             "/ViT-B-32.pt": b"published bytes" * 1000, "/clip_image_enc.pt": b"junk"}
    with serving(files) as server:
        for name, path in (("clip/text-enc", "/clip_text_enc.pt"), ("ViT-B/32", "/ViT-B-32.pt"),
                           ("clip/image-enc", "/clip_image_enc.pt")):
            data, spec = files[path], ckpt.REGISTRY[name]
            published = dict(size=len(data), sha256=hashlib.sha256(data).hexdigest()) \
                if spec.sha256 else {}
            monkeypatch.setitem(ckpt.REGISTRY, name, dataclasses.replace(
                spec, url=server.url(path), approx_size=len(data), **published))
        code, out, _ = run_cli(capsys, "download", "clip/text-enc", "rank")
        assert code == 0
        assert out.splitlines() == [
            f"clip/text-enc\t{cache / 'clip_text_enc.pt'}\t"
            f"{len(files['/clip_text_enc.pt']) / 2**20:.1f} MB",
            f"ViT-B/32\t{cache / 'ViT-B-32.pt'}\t0.0 MB"]
        assert (cache / "clip_text_enc.pt").read_bytes() == files["/clip_text_enc.pt"]
        code, out, _ = run_cli(capsys, "download", "clip/text-enc")  # already here
        assert code == 0 and "clip_text_enc.pt" in out and len(server.requests) == 2
        (cache / "ViT-B-32.pt").write_bytes(b"x" * 15000)  # the size, not the contents
        code, _, err = run_cli(capsys, "download", "rank")
        assert code == 1 and "does not have the sha256 of ViT-B/32" in err
        code, out, err = run_cli(capsys, "download", "clip/image-enc")
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 1 and len(errors) == 1 and "clip_image_enc.pt" in errors[0]
    assert "next attempt downloads it again" in errors[0]
    assert (cache / "clip_image_enc.pt.corrupt").exists()


def test_download_without_network_says_where_to_put_the_file(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(ckpt.CACHE_ENV, str(tmp_path / "cache"))
    spec = ckpt.REGISTRY["base"]
    monkeypatch.setitem(ckpt.REGISTRY, "base", ckpt.CheckpointSpec(
        "base", spec.filename, "http://127.0.0.1:9/base.pt", spec.approx_size))
    code, _, err = run_cli(capsys, "download", "generate", "--quiet")
    assert code == 1 and len(err.splitlines()) == 1
    assert "Could not download base.pt" in err and "Download it by hand" in err
    code, out, _ = run_cli(capsys, "download", *TINY)
    assert code == 0 and "nothing to download" in out


def test_serve_and_app_py_share_one_set_of_flags():
    flags = ["--host", "0.0.0.0", "--port", "9999", "--share", "--auth", "a:b",
             "--queue-size", "3", "--models", "tiny", "--device", "cpu", "--dtype", "fp32",
             "--checkpoints", "ckpt", "--max-memory", "2GB"]
    served = vars(build_parser().parse_args(["serve", *flags]))
    from_app = vars(parse_serve_args(flags))
    assert {key: served[key] for key in from_app} == from_app
    assert from_app["port"] == 9999 and from_app["max_memory"] == "2GB"


def test_outpaint_and_its_rerun(capsys, tmp_path, glide):
    code, out, _ = run_cli(capsys, "outpaint", PHOTO, "a cat on a sofa", "--left", "40",
                           "--blend", "4", *FAST, "--seed", "3", "--out", tmp_path)
    assert code == 0
    [path] = paths_in(out)
    expected = glide.outpaint(PHOTO, "a cat on a sofa", left=40, blend=4, seed=3,
                              base_respacing=2, upsample=False)
    assert np.array_equal(pixels(path), np.asarray(expected.images[0]))
    assert Image.open(path).size == (451 + 40, 300)
    code, _, err = run_cli(capsys, "rerun", path, "--image", PHOTO, "--out", tmp_path)
    assert code == 0 and f"same pixels as {path}." in err


def test_inpaint_takes_shapes_for_the_mask_and_inverts(capsys, tmp_path, glide):
    code, out, _ = run_cli(capsys, "inpaint", PHOTO, "ellipse:140,90,330,170", "x", *FAST,
                           "--seed", "1", "--invert", "--mask-grow", "-2", "--out", tmp_path)
    assert code == 0
    [path] = paths_in(out)
    expected = glide.inpaint(PHOTO, None, "x", mask_shape="ellipse:140,90,330,170",
                             mask_invert=True, mask_grow=-2, seed=1, base_respacing=2,
                             upsample=False)
    assert np.array_equal(pixels(path), np.asarray(expected.images[0]))
    code, _, err = run_cli(capsys, "rerun", path, "--image", PHOTO, "--out", tmp_path)
    assert code == 0 and f"same pixels as {path}." in err


def test_filmstrips_go_beside_their_pictures_and_never_over_another(capsys, tmp_path):
    for _ in range(2):  # the same name twice: the second run's files get names of their own
        code, out, err = run_cli(capsys, "generate", "a corgi", *FAST, "--seed", "5",
                                 "--filmstrip", "3", "--out", tmp_path)
        assert code == 0, err
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == sorted(f"glide-text2im-a-corgi-5{n}{end}" for n in ("", "-2")
                           for end in (".png", "-filmstrip.png", "-filmstrip.webp"))
    with Image.open(tmp_path / "glide-text2im-a-corgi-5-filmstrip.webp") as film:
        assert film.n_frames >= 2
