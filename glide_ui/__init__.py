"""glide-ui: a browser app, a command line and a Python API for OpenAI's GLIDE diffusion models.

    from glide_ui import Glide
    images = Glide().text2im("an oil painting of a corgi", seed=42).images

The public names below are imported on first use (PEP 562), so `import glide_ui` (and the
`glide-ui` command's start) does not load torch until something needs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Glide": "glide_ui.api",
    "GlideOutput": "glide_ui.api",
    "ModelManager": "glide_ui.models",
    "Recipe": "glide_ui.recipe",
    "read_recipe": "glide_ui.images",
    "save_png": "glide_ui.images",
    "load_image": "glide_ui.images",
    "GlideUIError": "glide_ui.errors",
    "RequestError": "glide_ui.errors",
    "Cancelled": "glide_ui.errors",
    "train": "glide_ui.training",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs (redundant aliases mark re-exports)
    from glide_ui.api import Glide as Glide
    from glide_ui.api import GlideOutput as GlideOutput
    from glide_ui.errors import Cancelled as Cancelled
    from glide_ui.errors import GlideUIError as GlideUIError
    from glide_ui.errors import RequestError as RequestError
    from glide_ui.images import load_image as load_image
    from glide_ui.images import read_recipe as read_recipe
    from glide_ui.images import save_png as save_png
    from glide_ui.models import ModelManager as ModelManager
    from glide_ui.recipe import Recipe as Recipe
    from glide_ui.training import train as train


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'glide_ui' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
