"""`pip install` of the repository into a fresh virtual environment, then the installed
`glide-ui` command and Python API, run from outside the repository.

The environment has no packages of its own but sees those of the interpreter running the
tests (the system's or an active virtual environment's, see environments.py), so the
dependencies (torch and the rest) are found there instead of being installed again: pip
builds the package from the source (the build backend comes from the package index) and
installs it and its console script into the environment, which is what is tested. The
source is a copy of the repository's files (what git tracks, plus new files it does not
ignore), so no build folder of an earlier build can leak into the wheel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from app_server import ROOT, running_app
from environments import running_site_dirs, sharing_venv
from PIL import Image

INSTALL_SECONDS = 900
RUN = dict(capture_output=True, text=True, timeout=600)


def copy_repository(target: Path) -> Path:
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                                cwd=ROOT, capture_output=True, check=True).stdout
        names = [name for name in listed.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", ".venv", "outputs"))
        return target
    for name in names:
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("install")
    source = copy_repository(root / "source")
    env_dir = root / "venv"
    python = sharing_venv(env_dir, running_site_dirs())
    report = root / "report.json"
    result = subprocess.run([str(python), "-m", "pip", "install",
                             "--no-input", "--report", str(report), str(source)],
                            capture_output=True, text=True, timeout=INSTALL_SECONDS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    installed = {item["metadata"]["name"] for item in json.loads(report.read_text())["install"]}
    # Everything else the package needs is already here: pip adds glide-ui alone (so, in
    # particular, no other build of torch and no torchvision).
    assert installed == {"glide-ui"}, result.stdout[-3000:]
    return env_dir


def test_the_installed_command_and_python_api(venv, tmp_path):
    bin_dir = venv / "bin"
    assert (bin_dir / "glide-ui").is_file()
    made = subprocess.run([str(bin_dir / "glide-ui"), "generate", "a corgi", "--models", "tiny",
                           "--steps", "2", "--no-upsample", "--seed", "3", "--out", "out"],
                          cwd=tmp_path, **RUN)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines() == ["out/glide-text2im-a-corgi-3.png"]
    info = subprocess.run([str(bin_dir / "glide-ui"), "info", "--json",
                           "out/glide-text2im-a-corgi-3.png"], cwd=tmp_path, **RUN)
    assert info.returncode == 0, info.stderr
    recipe = json.loads(info.stdout)
    assert (recipe["prompt"], recipe["seed"], recipe["pipeline"]) == ("a corgi", 3, "text2im")

    code = ("import glide_ui\n"
            "from glide_ui import Glide\n"
            "print(glide_ui.__file__)\n"
            "out = Glide('tiny', device='cpu', progress=False).text2im(\n"
            "    'a corgi', seed=3, base_respacing=2, upsample=False)\n"
            "out.images[0].save('api.png')\n")
    api = subprocess.run([str(bin_dir / "python"), "-c", code], cwd=tmp_path, **RUN)
    assert api.returncode == 0, api.stderr
    assert Path(api.stdout.strip()).is_relative_to(venv)  # the installed copy, not the source
    with Image.open(tmp_path / "api.png") as a, \
            Image.open(tmp_path / "out" / "glide-text2im-a-corgi-3.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert a.info["glide-ui"] == b.info["glide-ui"]


def test_the_installed_app_serves_with_its_example_pictures(venv, tmp_path):
    found = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "from glide_ui.ui.backend import ASSETS_DIR; print(ASSETS_DIR)"],
                           cwd=tmp_path, **RUN)
    assets = Path(found.stdout.strip())
    assert assets.is_relative_to(venv) and (assets / "masks" / "chelsea-eyes.png").is_file()
    with running_app(command=[str(venv / "bin" / "glide-ui"), "serve"], cwd=tmp_path) as app:
        with urllib.request.urlopen(f"{app.url}gradio_api/file={assets / 'chelsea.png'}",
                                    timeout=30) as response:
            assert response.status == 200 and response.read(8) == b"\x89PNG\r\n\x1a\n"
