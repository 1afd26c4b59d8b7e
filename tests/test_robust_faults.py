"""Faults (issue #7, item 3): out of memory during a step, a checkpoint that fails to load,
and a process killed in the middle of a download.

The app runs through tests/fault_app.py, which injects the faults; the product has no
test hooks. Each checked case is recorded in the robustness table (tests/robust_cases.py).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from app_server import ROOT, running_app
from fault_app import BALLAST_BYTES, FAULTS_ENV, INJECTED_OOM
from file_server import serving
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from robust_api import FAST, editor, said
from robust_cases import record
from robust_files import mask_layer, rgb_png

from glide_ui import checkpoints as ckpt
from glide_ui.images import read_recipe
from glide_ui.models import ModelManager

OOM_CALL = 5  # base's forward calls: 1-2 are the warm-up request, 5 is step 3 of the next
OUT_OF_MEMORY = "Out of memory while generating"


def _checkpoint_folder(folder: Path) -> Path:
    """A --checkpoints folder with a truncated GLIDE checkpoint and a wrong OpenAI CLIP file."""
    folder.mkdir()
    state = ModelManager("tiny").get("base-inpaint").state_dict()
    torch.save(state, folder / "base_inpaint.pt")
    whole = (folder / "base_inpaint.pt").read_bytes()
    (folder / "base_inpaint.pt").write_bytes(whole[:len(whole) // 2])
    (folder / "ViT-B-32.pt").write_bytes(b"PK\x03\x04 not the TorchScript archive")
    return folder


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = _checkpoint_folder(tmp_path_factory.mktemp("faults") / "checkpoints")
    faults = f"oom=base@{OOM_CALL};files=base-inpaint,ViT-B/32"
    with running_app("--checkpoints", str(folder), script=ROOT / "tests" / "fault_app.py",
                     env={FAULTS_ENV: faults}) as running:
        yield running


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


def _rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def _settled_rss(pid: int, seconds: float = 1.0) -> int:
    time.sleep(seconds)
    return _rss(pid)


def test_out_of_memory_ends_the_request_frees_memory_and_the_next_runs(app, client):
    warm = client.predict(prompt="warm up", seed=1, api_name="/generate", **FAST)  # calls 1-2
    assert warm[2][0]["caption"] == "seed 1"
    before = _settled_rss(app.pid)
    with pytest.raises(AppError, match=OUT_OF_MEMORY) as failure:
        client.predict(prompt="too big", seed=2, api_name="/generate", steps=4, upsample=False)
    assert INJECTED_OOM in app.log_tail(20_000), "the fault was not the one injected"
    assert "Traceback" not in str(failure.value)
    # The ballast (as the failed step's activations) is released with the request: memory
    # goes back to where it was, well below what the failed step held.
    deadline = time.monotonic() + 20
    while _rss(app.pid) > before + BALLAST_BYTES // 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    after = _rss(app.pid)
    assert after < before + BALLAST_BYTES // 4, \
        f"RSS {before / 2**20:.0f} MB before, {after / 2**20:.0f} MB after the failed request"
    freed = f"RSS back to +{(after - before) / 2**20:.0f} MB"
    record("faults", "out of memory at step 3 of a /generate run (600 MB held by the step)",
           f"{said(failure.value, 40, 'ended with')}; {freed}")
    result = client.predict(prompt="after the fault", seed=3, api_name="/generate", **FAST)
    assert read_recipe(result[2][0]["image"]).prompt == "after the fault"
    record("faults", "next request after out of memory", "ran, correct recipe")


def test_a_checkpoint_that_fails_to_load_is_reported_and_other_tabs_serve(app, client,
                                                                          tmp_path):
    value = editor(rgb_png(tmp_path), mask_layer(tmp_path))
    for _ in range(2):  # the same message each time, not a crash or a half-loaded model
        with pytest.raises(AppError, match=r"base_inpaint\.pt is truncated or corrupt") as error:
            client.predict(mask_editor=value, prompt="x", seed=1, api_name="/inpaint", **FAST)
    record("faults", "truncated base_inpaint.pt in --checkpoints, /inpaint (twice)",
           said(error.value), 2)
    result = client.predict(prompt="still serving", seed=4, api_name="/generate", **FAST)
    assert result[2][0]["caption"] == "seed 4"
    record("faults", "/generate after the inpaint checkpoint failed", "ran")

    with pytest.raises(AppError, match=r"ViT-B-32\.pt is \d+ bytes, expected 353976522"):
        client.predict(images=[{"image": handle_file(result[2][0]["image"])}], prompt="x",
                       api_name="/rank")
    with pytest.raises(AppError, match=r"ViT-B-32\.pt is \d+ bytes") as error:
        client.predict(prompt="x", seed=5, rank_with_clip=True, api_name="/generate", **FAST)
    record("faults", "wrong ViT-B-32.pt in --checkpoints, /rank and /generate with ranking",
           said(error.value), 2)
    result = client.predict(prompt="still serving", seed=6, api_name="/clip_guided", **FAST)
    assert result[2][0]["caption"] == "seed 6"
    record("faults", "/clip_guided after the CLIP file failed", "ran")


# --- a download killed half way -----------------------------------------------------------

PAYLOAD = os.urandom(4_000_000)
SPEC = "test-model", "model.pt"

_DOWNLOADER = """
import sys
from glide_ui import checkpoints as ckpt
spec = ckpt.CheckpointSpec("test-model", "model.pt", sys.argv[1], {size}, {size}, "{sha}")
ckpt.download(spec, __import__("pathlib").Path(sys.argv[2]))
"""


def test_a_download_killed_half_way_leaves_nothing_that_passes_for_complete(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    cache = tmp_path / "cache"
    final, part = cache / "model.pt", cache / "model.pt.part"
    with serving({"/model.pt": PAYLOAD}) as server:
        server.pace = (64 * 1024, 0.02)  # ~3 MB/s: the transfer takes over a second
        script = _DOWNLOADER.format(size=len(PAYLOAD), sha=sha)
        process = subprocess.Popen([sys.executable, "-c", script, server.url("/model.pt"),
                                    str(cache)], cwd=ROOT, env={**os.environ,
                                                                "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 60
        while (not part.exists() or part.stat().st_size < 500_000) \
                and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        assert not final.exists(), "a killed download left a file under the final name"
        assert 0 < part.stat().st_size < len(PAYLOAD)
        record("faults", "SIGKILL during a download",
               f"only model.pt.part left ({part.stat().st_size} of {len(PAYLOAD)} bytes)")

        server.pace = None
        spec = ckpt.CheckpointSpec(*SPEC, server.url("/model.pt"), len(PAYLOAD), len(PAYLOAD),
                                   sha)
        assert ckpt.fetch(spec, None, cache) == final
        assert final.read_bytes() == PAYLOAD and not part.exists()
        assert server.requests[-1][1] is not None and server.requests[-1][1].startswith("bytes=")
        record("faults", "fetch after the killed download",
               "resumed with a Range request, verified (sha256), renamed into place")

    truncated = cache / "truncated"
    truncated.mkdir()
    (truncated / "model.pt").write_bytes(PAYLOAD[:1_000_000])
    with pytest.raises(ckpt.CorruptCheckpointError, match="expected 4000000"):
        ckpt.verify_local(spec, truncated / "model.pt")
    glide = truncated / "base.pt"
    torch.save({"weight": torch.zeros(50_000)}, glide)
    glide.write_bytes(glide.read_bytes()[:100_000])
    with pytest.raises(ckpt.CorruptCheckpointError, match="truncated or corrupt"):
        ckpt.load_state_dict(glide)
    record("faults", "truncated file placed under the final name (known size; GLIDE file)",
           "refused: 'is 1000000 bytes, expected 4000000' / 'is truncated or corrupt'", 2)
