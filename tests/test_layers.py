"""The package's layers: every import points down, no module imports another in a cycle
(read from the source, lazy imports included), and the top level and glide_ui.pipelines
export the public names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "glide_ui"

# Lower numbers sit lower; a module may import only from lower ranks (or its own package).
RANKS = {
    "glide_ui.heap": -1,  # glibc's heap (no imports): the networks trim it as they pack
    "glide_ui": 0, "glide_ui.errors": 0, "glide_ui.recipe": 0, "glide_ui.glide": 0,
    "glide_ui.settings": 0,
    "glide_ui.files": 0.5,  # uses errors; every writer of files (images too) uses it
    "glide_ui.images": 1, "glide_ui.checkpoints": 1, "glide_ui.compute": 1,
    "glide_ui.openai_clip": 2, "glide_ui.history": 2,
    "glide_ui.finetunes": 2.5,  # fine-tune files: read, checked, merged into weights
    # under the manager: sizes and budget, building networks, what it reports
    "glide_ui.memory_budget": 2.8, "glide_ui.model_build": 2.8, "glide_ui.model_status": 2.8,
    "glide_ui.models": 3,
    "glide_ui.model_files": 3.5,  # the files as a user manages them: over the loader
    "glide_ui.pipelines": 4,
    "glide_ui.training": 4.5,  # fine-tuning: samples with the pipelines' stages
    # the Python API's parts under `Glide`: its output, progress bars, seeds, reruns
    "glide_ui.outputs": 4.8, "glide_ui.stage_bars": 4.8, "glide_ui.seed_runs": 4.8,
    "glide_ui.reruns": 4.8,
    "glide_ui.api": 5, "glide_ui.ui": 5, "glide_ui.replicas": 5,
    "glide_ui.server": 6,
    "glide_ui.train_cli": 6.5,  # the `train` command's flags and run, under the cli
    "glide_ui.cli": 7,
    "glide_ui.__main__": 8,
}


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def layer(module: str) -> str:
    """The RANKS key a module belongs to (its package for the subpackages)."""
    parts = module.split(".")
    for depth in (2, 1):
        key = ".".join(parts[:depth])
        if key in RANKS:
            return key
    raise KeyError(module)


def imports_of(module: str) -> set[str]:
    """glide_ui modules `module` imports (anywhere in it, lazy imports included)."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    known = set(module_names())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:  # relative (inside glide_ui.glide): from the module's package
                package = module.rsplit(".", node.level)[0]
                source = f"{package}.{source}" if source else package
            # `from package import submodule` imports the submodule; otherwise the module.
            submodules = {f"{source}.{alias.name}" for alias in node.names} & known
            found |= submodules or {source}
    return {name for name in found if name in known and name != module}


def test_every_module_has_a_layer():
    for module in module_names():
        assert layer(module) in RANKS


def test_every_package_is_installed():
    """pyproject.toml lists the packages by hand: a new one left out is missing from the
    wheel (the `glide-ui` command would not start)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in PACKAGE.rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)


def test_imports_point_down_only():
    upward = []
    for module in module_names():
        if module == "glide_ui":
            continue  # the package's face: it names the public objects, imported lazily
        own = layer(module)
        for target in imports_of(module):
            other = layer(target)
            if other != own and other != "glide_ui" and RANKS[other] >= RANKS[own]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports up or sideways a layer: " + ", ".join(upward)


def test_no_import_cycles():
    graph = {module: imports_of(module) for module in module_names()}
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if target == "glide_ui":
                continue  # the package's __init__ only holds __version__ and lazy names
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path, module, target]))
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_public_names_at_the_top_level_and_in_pipelines():
    # glide_ui.images first: it used to import the pipelines' recipe module (a cycle).
    code = """
import sys
import glide_ui
assert "torch" not in sys.modules, "import glide_ui should not load torch"
from glide_ui import Glide, GlideOutput, ModelManager, Recipe, read_recipe, save_png
from glide_ui import GlideUIError, RequestError, load_image
import glide_ui.images
import glide_ui.api, glide_ui.models
assert Glide is glide_ui.api.Glide and ModelManager is glide_ui.models.ModelManager
assert {"Glide", "Recipe", "__version__"} <= set(dir(glide_ui))
try:
    glide_ui.nothing_here
except AttributeError:
    pass
else:
    raise SystemExit("an unknown name should be an AttributeError")
from glide_ui.pipelines import text2im, clip_guided, inpaint, rank, sweep, Text2ImRequest
from glide_ui.pipelines import Result, Preview
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
