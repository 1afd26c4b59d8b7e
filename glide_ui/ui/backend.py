"""What the tabs' handlers share: the model manager and where result files go."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import gradio as gr

from glide_ui.models import ModelManager
from glide_ui.ui.results import ResultStore

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
"""Example pictures shipped with the app (the only folder outside Gradio's own it serves)."""

GPU_QUEUE = "glide-worker"
"""Concurrency group of every handler that runs a model: one at a time across all tabs."""


@dataclass
class Backend:
    manager: ModelManager
    store: ResultStore = field(default_factory=ResultStore)

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
