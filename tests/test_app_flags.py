"""Every value of the documented --dtype and --device flags, on the machine at hand: the app
either serves and a run completes (saying on the page when the path is slow), or refuses
to start in one line that says why and what to use. Never a failed run.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest
import torch
from app_server import ROOT, running_app
from gradio_client import Client

from glide_ui.compute import choose_path
from glide_ui.images import read_recipe

ISA = torch.backends.cpu.get_cpu_capability()


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_each_cpu_dtype_serves_and_a_run_completes(dtype: str) -> None:
    path = choose_path("cpu", dtype)
    with running_app("--device", "cpu", "--dtype", dtype) as app:
        client = Client(app.url, verbose=False)
        status = client.predict(api_name="/models_status")
        assert status["compute_path"] == path.describe(), f"{ISA} CPU"
        if path.notice:  # emulated bf16: said on the page (banner), in the API and the log
            assert path.notice in status["notice"], f"{ISA} CPU, {path.describe()}"
            assert path.notice in app.log_tail(20000)
            with urllib.request.urlopen(app.url + "config", timeout=30) as page:
                assert path.notice in page.read().decode()  # the banner's text
        result = client.predict(prompt="a red cube", seed=3, steps=2, upsample=False,
                                api_name="/generate")
    gallery = result[2]
    assert len(gallery) == 1, f"{ISA} CPU, {path.describe()}: {result[3]}"
    settings = read_recipe(gallery[0]["image"]).settings
    assert settings["dtype"] == str(path.dtype).removeprefix("torch.")
    assert settings["compute_path"] == path.describe()


def _start_up_error(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "--models", "tiny", *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("flags", "says"), [
    (("--dtype", "fp16", "--device", "cpu"), "fp16 is for GPUs; on the CPU use fp32 or bf16"),
    (("--device", "cuda"), "no CUDA GPU is usable here"),
    (("--device", "mps"), "MPS is not available here"),
])
def test_a_flag_this_machine_cannot_run_is_refused_in_one_line(flags, says) -> None:
    if "cuda" in flags and torch.cuda.is_available():
        flags, says = ("--device", "cuda:99"), "CUDA GPU(s)"
    finished = _start_up_error(*flags)
    assert finished.returncode != 0
    lines = [line for line in finished.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and says in lines[-1], finished.stderr
    assert "Traceback" not in finished.stderr

