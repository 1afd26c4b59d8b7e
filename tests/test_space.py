"""What a Hugging Face Space installs and what it runs.

A Space installs pre-requirements.txt, then requirements.txt; our own machines install
requirements.txt and clip-anytorch without its dependencies. The first tests resolve the
Space's install with pip (`--dry-run`, metadata from the package index, nothing installed):
the Space gets clip-anytorch and the torchvision built for the pinned torch, while what
requirements.txt needs (followed through the same resolution) holds no torchvision. The
last runs the app the way requirements.txt alone leaves it, without clip-anytorch (an
environment holding every package installed here but that one): every tab works or says
what is missing and how to install it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from app_server import ASSETS, ROOT, running_app
from environments import running_site_dirs, sharing_venv
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from glide_ui.openai_clip import CLIP_REQUIREMENT

SPACE_FIRST, OURS, NODEPS = (ROOT / name for name in (
    "pre-requirements.txt", "requirements.txt", "requirements-nodeps.txt"))
INSTALL_HINT = f"pip install --no-deps {CLIP_REQUIREMENT}"
FAST = {"steps": 2, "upsample": False}


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.split("#")[0].strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_the_pins_agree():
    space, ours, nodeps = pins(SPACE_FIRST), pins(OURS), pins(NODEPS)
    assert space["torch"] == ours["torch"]
    assert space["clip-anytorch"] == nodeps["clip-anytorch"] == CLIP_REQUIREMENT.split("==")[1]
    assert "torchvision" in space and "torchvision" not in ours


def resolve(folder: Path, *args: str) -> dict[str, dict]:
    """What `pip install ARGS` would install into an empty environment: name -> metadata."""
    report = folder / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                             "--ignore-installed", "--no-input", "--report", str(report), *args],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"]
            for item in json.loads(report.read_text())["install"]}


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> dict[str, dict]:
    """The Space's install, resolved: pre-requirements.txt, then requirements.txt."""
    return resolve(tmp_path_factory.mktemp("space"), "-r", str(SPACE_FIRST), "-r", str(OURS))


def needed(resolved: dict[str, dict], roots: list[Requirement]) -> set[str]:
    """The packages `roots` need, transitively, among the resolved ones (extras and
    environment markers taken into account)."""
    found: set[str] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in found or name not in resolved:
            continue
        found.add((name, extras))
        for text in resolved[name].get("requires_dist") or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra})
                                     for extra in ("", *extras)):
                todo.append((canonicalize_name(requirement.name),
                             frozenset(requirement.extras)))
    return {name for name, _ in found}


def requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def test_a_space_installs_clip_with_the_torchvision_of_its_torch(space):
    assert space["clip-anytorch"]["version"] == pins(NODEPS)["clip-anytorch"]
    torch_version = space["torch"]["version"].split("+")[0]  # a local build label aside
    assert torch_version == pins(OURS)["torch"]
    wanted = [Requirement(r) for r in space["torchvision"]["requires_dist"]]
    torch_pins = [str(r.specifier) for r in wanted if r.name == "torch"]
    assert torch_pins == [f"=={torch_version}"]
    assert {"gradio", "torchvision", "clip-anytorch"} <= needed(space, requirements(SPACE_FIRST)
                                                                + requirements(OURS))


def test_our_install_stays_free_of_torchvision(space, tmp_path):
    ours = needed(space, requirements(OURS))
    assert {"torch", "gradio", "tiktoken"} <= ours
    assert "torchvision" not in ours and "clip-anytorch" not in ours
    nodeps = resolve(tmp_path, "--no-deps", "-r", str(NODEPS))
    assert list(nodeps) == ["clip-anytorch"]


@pytest.fixture(scope="module")
def python_without_clip(tmp_path_factory) -> Path:
    """A virtual environment's python that sees every package installed here but
    clip-anytorch: its site-packages adds a folder of links to all the others."""
    root = tmp_path_factory.mktemp("without-clip")
    mirror = root / "site-packages"
    mirror.mkdir()
    for folder in running_site_dirs():
        for entry in folder.iterdir() if folder.is_dir() else ():
            hidden = entry.name == "clip" or entry.name.lower().startswith("clip_anytorch")
            if not hidden and not (mirror / entry.name).exists():
                (mirror / entry.name).symlink_to(entry)
    python = sharing_venv(root / "venv", [mirror])
    check = subprocess.run([str(python), "-c", "import importlib.util as u; "
                            "assert u.find_spec('clip') is None; import gradio, torch"],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    return python


def test_without_clip_anytorch_every_tab_works_or_says_what_is_missing(python_without_clip):
    with running_app(command=[str(python_without_clip), str(ROOT / "app.py")]) as app:
        with urllib.request.urlopen(app.url + "config", timeout=30) as response:
            config = response.read().decode()
        assert "clip-missing-banner" in config and INSTALL_HINT in config
        client = Client(app.url, verbose=False)
        made = client.predict(prompt="a corgi", seed=1, api_name="/generate", **FAST)
        picture = made[2][0]["image"]
        assert Path(picture).is_file()
        refused = [
            dict(prompt="a red cube", clip_source="glide", api_name="/clip_guided", **FAST),
            dict(prompt="a red cube", clip_source="openai", api_name="/clip_guided", **FAST),
            dict(prompt="a corgi", rank_with_clip=True, api_name="/generate", **FAST),
            dict(images=[{"image": handle_file(picture)}], prompt="a corgi",
                 api_name="/rank"),
        ]
        for call in refused:
            with pytest.raises(AppError) as error:
                client.predict(**call)
            assert "clip-anytorch" in str(error.value) and INSTALL_HINT in str(error.value)
        editor = {"background": handle_file(str(ASSETS / "chelsea.png")),
                  "layers": [handle_file(str(ASSETS / "masks" / "chelsea-eyes.png"))],
                  "composite": None}
        inpainted = client.predict(mask_editor=editor, prompt="sunglasses", seed=2,
                                   api_name="/inpaint", **FAST)
        assert Path(inpainted[5]).is_file()
        info = client.predict(path=handle_file(picture), api_name="/png_info")
        assert "Seed: 1" in info[1]
        assert client.predict(api_name="/models_status")["model_set"] == "tiny"
    cli = subprocess.run([str(python_without_clip), "-m", "glide_ui", "clip", "a cube",
                          "--models", "tiny"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert cli.returncode == 1 and len(cli.stderr.splitlines()) == 1
    assert INSTALL_HINT in cli.stderr
