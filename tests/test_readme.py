"""The README's "Use from Python" and "Command line" examples, run as written except for two
things: the tiny models (no weights can be fetched here) and 2 sampling steps per stage
(their own step counts take minutes on the tiny models). They run in a temporary folder
that holds a link to the example pictures, as the repository's folder does."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pytest
from app_server import ASSETS, ROOT

from glide_ui import api, read_recipe
from glide_ui.cli import main
from glide_ui.models import ModelManager

FAST = {"base_respacing": 2, "upsample_respacing": "2"}
FAST_FLAGS = ["--models", "tiny", "--steps", "2", "--upsample-steps", "2"]


def code_blocks(section: str, language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end != -1 else None]
    return re.findall(rf"```{language}\n(.*?)```", body, re.DOTALL)


@pytest.fixture
def in_a_folder_with_the_assets(tmp_path, monkeypatch):
    (tmp_path / "assets").symlink_to(ASSETS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_python(section: str, monkeypatch, settings: dict) -> dict:
    """Run the section's Python example on the tiny models with `settings` forced into
    every request; the names it defines."""
    real_request = api._request
    monkeypatch.setattr(api, "_request", lambda pipeline, **values: real_request(
        pipeline, **{**values, **settings}))
    monkeypatch.setattr(api, "ModelManager",
                        lambda model_set="official", **kw: ModelManager(model_set="tiny", **kw))
    [code] = code_blocks(section, "python")
    names: dict = {}
    exec(compile(code, "README.md", "exec"), names)
    return names


def test_use_from_python(in_a_folder_with_the_assets, monkeypatch, capsys):
    names = run_python("Use from Python", monkeypatch, FAST)
    folder = in_a_folder_with_the_assets
    assert read_recipe(folder / "corgi.png") == names["out"].recipes[0]
    assert sorted(p.name for p in (folder / "outputs").iterdir()) == [
        "glide-text2im-an-oil-painting-of-a-corgi-42.png",
        "glide-text2im-an-oil-painting-of-a-corgi-43.png"]
    assert [r.seed for r in names["quick"].recipes] == [3, 17]
    assert "base 1 / 2 (64, 64)" in capsys.readouterr().out
    assert len(names["scores"]) == 2 and (folder / "sweep.png").is_file()
    assert names["fixed"].images[0].size == (451, 300)
    assert names["again"].recipes[0] == names["out"].recipes[0]


def test_command_line(in_a_folder_with_the_assets, capsys):
    [block] = code_blocks("Command line", "bash")
    for line in block.strip().splitlines():
        words = shlex.split(line)
        assert words[0] == "glide-ui", line
        argv = [match for word in words[1:]
                for match in (sorted(glob.glob(word)) if "*" in word else [word])]
        if argv[0] in ("generate", "clip", "inpaint"):
            argv += FAST_FLAGS
        elif argv[0] in ("rank", "download", "models"):
            argv += ["--models", "tiny"]
        assert main(argv) == 0, (line, capsys.readouterr().err)
    outputs = Path("outputs")
    corgis = [p.name for p in outputs.glob("glide-text2im-a-corgi-*")]  # random seeds
    assert len([name for name in corgis if "filmstrip" not in name]) == 2
    assert len([name for name in corgis if name.endswith("-filmstrip.webp")]) == 1
    assert {p.name for p in outputs.glob("glide-text2im-an-*")} == {
        "glide-text2im-an-oil-painting-of-a-corgi-42.png",
        "glide-text2im-an-oil-painting-of-a-corgi-43.png",
        "glide-text2im-an-oil-painting-of-a-corgi-43-2.png"}  # the rerun's
    assert len(list(outputs.glob("glide-clip_guided-*"))) == 2
    assert len(list(outputs.glob("glide-inpaint-*"))) == 1


def test_outpaint_and_mask_tools(in_a_folder_with_the_assets, monkeypatch, capsys):
    """The section's Python and command-line examples, with 2 base steps and no upsampler
    (each outpainting runs two windows)."""
    names = run_python("Outpaint and mask tools", monkeypatch,
                       {"base_respacing": 2, "upsample": False})
    assert "(579, 300)" in capsys.readouterr().out
    assert names["cinema"].images[0].size == (533, 300)
    assert names["shades"].recipes[0].settings["mask_shape"] == "ellipse:130,95,330,170"
    assert names["backdrop"].recipes[0].settings["mask_invert"] is True
    [block] = code_blocks("Outpaint and mask tools", "bash")
    for line in block.strip().splitlines():
        words = shlex.split(line)
        assert words[0] == "glide-ui", line
        argv = [*words[1:], "--models", "tiny", "--steps", "2", "--no-upsample"]
        assert main(argv) == 0, (line, capsys.readouterr().err)
    outputs = Path("outputs")
    assert len(list(outputs.glob("glide-outpaint-*"))) == 2
    assert len(list(outputs.glob("glide-inpaint-*"))) == 2
