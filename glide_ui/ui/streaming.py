"""Turn a pipeline's event stream into updates of a tab's run area (preview, progress, results)."""

from __future__ import annotations

import functools
import gc
import html
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import gradio as gr

from glide_ui.errors import GlideUIError
from glide_ui.heap import release_heap
from glide_ui.pipelines.events import Event, Filmstrips, Preview, Progress, Result, Status
from glide_ui.ui.results import ResultStore, gallery_items, preview_image

log = logging.getLogger("glide_ui.ui")

PROGRESS_INTERVAL = 0.2  # seconds between step-only updates

STAGE_NAMES = {
    "base": "Base model, 64 px",
    "upsample": "Upsampler, 256 px",
    "clip": "CLIP",
    "rank": "CLIP ranking",
}


@dataclass
class RunArea:
    """The output components every generating tab shows, in the order handlers yield them."""

    preview: gr.Image
    progress: gr.HTML
    gallery: gr.Gallery
    notes: gr.Markdown

    def outputs(self) -> list[gr.components.Component]:
        return [self.preview, self.progress, self.gallery, self.notes]


@dataclass
class _Eta:
    """Step rate of the current stage, for a remaining-time estimate."""

    stage: str = ""
    started: float = 0.0
    first_step: int = 0

    def remaining(self, stage: str, step: int, total: int) -> float | None:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.started, self.first_step = stage, now, step
            return None
        done = step - self.first_step
        if done <= 0:
            return None
        return (now - self.started) / done * (total - step)


@dataclass
class _RunState:
    eta: _Eta = field(default_factory=_Eta)
    notes: list[str] = field(default_factory=list)
    last_sent: float = 0.0  # when the last step update went out
    gallery: list = field(default_factory=list)  # the last result's items


def progress_html(label: str, fraction: float, detail: str = "") -> str:
    """A progress bar the page shows above the preview (plain HTML, no Gradio overlay)."""
    percent = max(0.0, min(1.0, fraction)) * 100
    detail_html = f'<span class="glide-eta">{html.escape(detail)}</span>' if detail else ""
    return (
        f'<div class="glide-progress" data-fraction="{fraction:.3f}">'
        f'<div class="glide-bar" style="width:{percent:.1f}%"></div>'
        f'<div class="glide-label"><span class="glide-step">{html.escape(label)}</span>'
        f"{detail_html}</div></div>"
    )


def idle_progress() -> str:
    return progress_html("Idle", 0.0)


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def _step_html(state: _RunState, stage: str, step: int, total: int) -> str:
    remaining = state.eta.remaining(stage, step, total)
    name = stage_name(stage)
    detail = "" if remaining is None else f"about {format_seconds(remaining)} left"
    return progress_html(f"{name}: step {step}/{total}", step / max(total, 1), detail)


def stage_name(stage: str) -> str:
    """"base" -> "Base model, 64 px"; a sweep's "guidance 3 · base" keeps its prefix."""
    prefix, _, last = stage.rpartition(" · ")
    name = STAGE_NAMES.get(last, last)
    return f"{prefix} · {name}" if prefix else name


def _notes_md(state: _RunState) -> str:
    return "\n".join(f"- {line}" for line in state.notes)


def render(events: Iterator[Event], store: ResultStore, user: str | None = None) \
        -> Iterator[tuple]:
    """Yield (preview, progress, gallery, notes) updates; `gr.skip()` where nothing changed.
    Results are saved by `store` for `user` (None: no login); pictures it could not keep
    are still shown, with a note saying so.

    Nothing is sent before the pipeline's first event, so a request it refuses leaves the
    page as it was (the message shows on its own). Step-only updates are sent at most every
    PROGRESS_INTERVAL seconds (the pipeline already throttles previews); the last update
    shows the final images in the preview too, so an API client's result holds them as
    well as the gallery (the labelled grid of a sweep).
    """
    state = _RunState()
    first = True
    for event in events:
        update = _update(event, state, store, user)
        if update is None:
            continue
        if first:  # the previous run's notes go
            update = (*update[:3], _notes_md(state))
            first = False
        yield update


def _update(event: Event, state: _RunState, store: ResultStore, user: str | None) \
        -> tuple | None:
    skip = gr.skip
    if isinstance(event, Status):
        if event.level == "warning":
            state.notes.append(f"⚠️ {event.text}")
            gr.Warning(event.text)
        return skip(), progress_html(event.text, 0.0), skip(), _notes_md(state)
    if isinstance(event, Progress):
        bar = _step_html(state, event.stage, event.step, event.total)
        now = time.monotonic()
        if now - state.last_sent < PROGRESS_INTERVAL and event.step not in (1, event.total):
            return None
        state.last_sent = now
        return skip(), bar, skip(), skip()
    if isinstance(event, Preview):
        state.last_sent = time.monotonic()
        bar = _step_html(state, event.stage, event.step, event.total)
        return preview_image(event.images), bar, skip(), skip()
    if isinstance(event, Result):
        saved = store.save(event, user)
        if saved.problem:
            state.notes.append(f"⚠️ {saved.problem}")
            gr.Warning(saved.problem)
        done = progress_html(f"Done: {len(saved.paths)} image(s)", 1.0)
        overview = event.grid if event.grid is not None else preview_image(event.images)
        state.gallery = gallery_items(saved.paths, event)
        return overview, done, state.gallery, _notes_md(state)
    if isinstance(event, Filmstrips):
        state.gallery = state.gallery + store.save_filmstrips(event)
        return skip(), skip(), state.gallery, skip()
    return None


def user_errors(handler: Callable) -> Callable:
    """Show every failure of a generator handler as a message, never as a stack trace.

    Gradio keeps what was already on the page when a handler raises `gr.Error`, so a failed
    run leaves the inputs and the previous results in place.
    """

    @functools.wraps(handler)
    def guarded(*args, **kwargs):
        try:
            yield from handler(*args, **kwargs)
        except gr.Error:
            raise
        except GlideUIError as error:
            message = str(error)
        except Exception as error:  # anything else is a bug or a fault: log it, say it plainly
            message = unexpected_error_message(error)
            _release(error)
        else:
            return
        # Raised outside the `except` block: the gr.Error carries no link to the failure,
        # whose traceback holds the frames (and tensors) of the run.
        raise gr.Error(message)

    return guarded


def _release(error: BaseException) -> None:
    """Let the memory of a failed run go: clear the frames its traceback holds (a step's
    activations after an out-of-memory error), collect them at once and hand them back to
    the system."""
    traceback.clear_frames(error.__traceback__)
    error.__traceback__ = None
    gc.collect()
    release_heap()


def unexpected_error_message(error: BaseException) -> str:
    log.exception("request failed", exc_info=error)
    if type(error).__name__ == "OutOfMemoryError" or isinstance(error, MemoryError):
        return "Out of memory while generating. Try a smaller batch or fewer models at once."
    return (f"Something went wrong ({type(error).__name__}). The request was stopped; "
            "the details are in the server log.")
