"""What the tabs' handlers share: the model manager, where result files go, who asks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import gradio as gr

from glide_ui.history import History, SavingPolicy
from glide_ui.models import ModelManager
from glide_ui.ui.results import ResultStore


def _assets_dir() -> Path:
    package = Path(__file__).resolve().parents[1]
    installed = package / "assets"  # in a wheel (pyproject.toml maps the folder there)
    return installed if installed.is_dir() else package.parent / "assets"


ASSETS_DIR = _assets_dir()
"""Example pictures shipped with the app (the only folder outside Gradio's own it serves):
the repository's assets/, or their copy inside an installed package."""

GPU_QUEUE = "glide-worker"
"""Concurrency group of every handler that runs a model: one at a time across all tabs."""


@dataclass
class Backend:
    """`history` is None when saving is off; `saving` says why (and where results go)."""

    manager: ModelManager
    history: History | None = None
    saving: SavingPolicy | None = None
    store: ResultStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = ResultStore(history=self.history)

    def models_status(self) -> dict:
        """What the Models tab shows, as data: model set, device, dtype, memory budget and
        use, loaded models, downloads (the read-only "/models_status" endpoint)."""
        return asdict(self.manager.status())


@dataclass
class TabHandles:
    """What the page needs from a tab to wire cross-tab features."""

    tab_id: str
    gallery: gr.Gallery
    send_to_inpaint: gr.Button
    selected: gr.State
    controls: dict[str, gr.components.Component]  # handler parameter name -> widget
    notes: gr.Markdown  # the run area's notes (what a restore could not bring back)


def user_of(request: gr.Request | None) -> str | None:
    """The logged-in user of a request (None without --auth)."""
    return getattr(request, "username", None) or None
