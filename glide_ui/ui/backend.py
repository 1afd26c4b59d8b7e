"""What the tabs' handlers share: the model manager and where result files go."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from glide_ui.models import ModelManager
from glide_ui.ui.results import ResultStore

GPU_QUEUE = "glide-worker"
"""Concurrency group of every handler that runs a model: one at a time across all tabs."""


@dataclass
class Backend:
    manager: ModelManager
    store: ResultStore = field(default_factory=ResultStore)


@dataclass
class TabHandles:
    """What the page needs from a tab to wire cross-tab features."""

    tab_id: str
    gallery: gr.Gallery
    send_to_inpaint: gr.Button
    selected: gr.State
    controls: dict[str, gr.components.Component]  # handler parameter name -> widget
