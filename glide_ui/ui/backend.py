"""What the tabs' handlers share: where pipelines run, where result files go, who asks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gradio as gr

from glide_ui.history import History, SavingPolicy
from glide_ui.models import ModelManager
from glide_ui.pipelines.events import Event
from glide_ui.training.policy import TrainingPolicy, runs_dir
from glide_ui.ui.results import ResultStore


def _assets_dir() -> Path:
    package = Path(__file__).resolve().parents[1]
    installed = package / "assets"  # in a wheel (pyproject.toml maps the folder there)
    return installed if installed.is_dir() else package.parent / "assets"


ASSETS_DIR = _assets_dir()
"""Example pictures shipped with the app (the only folder outside Gradio's own it serves):
the repository's assets/, or their copy inside an installed package."""

GPU_QUEUE = "glide-worker"
"""Concurrency group of every handler that runs a model: as many at once as there are
workers (`Backend.slots`) across all tabs."""


class Runner(Protocol):
    """Runs pipelines elsewhere (`glide_ui.replicas.RayRunner`): `slots` at once."""

    slots: int
    shares_files: bool  # whether it reads this machine's files

    def run(self, pipeline: Callable[..., Iterator[Event]], *args: Any,
            **kwargs: Any) -> Iterator[Event]: ...

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


@dataclass
class Backend:
    """`history` is None when saving is off; `saving` says why (and where results go).
    `runner` None: pipelines run in this process on `manager`, one at a time.
    `training`: whether the Train tab trains (default: yes, a page of one's own), into
    sub-folders of `runs` (default: `training.policy.runs_dir()`)."""

    manager: ModelManager
    history: History | None = None
    saving: SavingPolicy | None = None
    runner: Runner | None = None
    training: TrainingPolicy = field(
        default_factory=lambda: TrainingPolicy(True, "", server_paths=True))
    runs: Path = field(default_factory=runs_dir)
    store: ResultStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = ResultStore(history=self.history)

    @property
    def slots(self) -> int:
        """How many requests may run at once."""
        return 1 if self.runner is None else self.runner.slots

    @property
    def shares_files(self) -> bool:
        """Whether pipelines run where this machine's files can be read."""
        return self.runner is None or self.runner.shares_files

    def run(self, pipeline: Callable[..., Iterator[Event]], *args: Any, **kwargs: Any) \
            -> Iterator[Event]:
        """The events of `pipeline(*args, manager=..., **kwargs)` (a generator of
        glide_ui.pipelines), run here or by the runner."""
        if self.runner is None:
            return pipeline(*args, manager=self.manager, **kwargs)
        return self.runner.run(pipeline, *args, **kwargs)

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`function(*args, manager=..., **kwargs)`'s value, computed here or by the runner."""
        if self.runner is None:
            return function(*args, manager=self.manager, **kwargs)
        return self.runner.call(function, *args, **kwargs)

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
    send_to_upscale: gr.Button | None = None  # "Upscale picked image" (not on Upscale's own)


def user_of(request: gr.Request | None) -> str | None:
    """The logged-in user of a request (None without --auth)."""
    return getattr(request, "username", None) or None
