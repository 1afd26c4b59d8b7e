"""The Train tab: fine-tune a model on uploaded (or, on one's own machine, local) captioned
pictures, watching the loss, samples beside the base model's, speed and time left.

The run is `glide_ui.training.fine_tune`'s generator, mapped to the tab's outputs; Stop
ends it after the step under way, keeping the last checkpoint (Resume continues it). The
fine-tune file it makes is listed in the Models tab for use by every job.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from glide_ui.glide.options import MODEL_NAMES
from glide_ui.training.config import TrainConfig
from glide_ui.training.policy import TrainingPolicy
from glide_ui.ui.backend import Backend, user_of
from glide_ui.ui.named import named_handler
from glide_ui.ui.streaming import format_seconds, progress_html, user_errors

TAB_ID = "train"
TRAIN_QUEUE = "glide-train"  # one run at a time; generating goes on beside it
UPDATE_INTERVAL = 0.5  # seconds between step-only updates
KINDS = ("LoRA", "Full")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT = TrainConfig(data="", out="")  # the widgets start from the run's own defaults


@dataclass
class TrainHandles:
    run: Any  # the run's event (the page chains the Models tab's list after it)


def _plot_frame(rows: list[tuple[int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["step", "loss"])


def run_folder(runs: Path, name: str, user: str | None) -> Path:
    """runs/<user or "local">/<name>; RequestError-like gr.Error for a name that is not a
    plain file name."""
    name = (name or "").strip()
    if not _NAME.fullmatch(name):
        raise gr.Error("Name the run with letters, digits, '.', '_' or '-' (up to 64, "
                       f"starting with a letter or digit), not {name!r}.")
    who = re.sub(r"[^A-Za-z0-9._-]", "_", user) if user else "local"
    return runs / who / name


def gather_data(uploads: list | None, data_path: str, out: Path, resume: bool,
                policy: TrainingPolicy) -> str:
    """What the run reads: the uploads copied into `out/data`, or the folder / list on the
    server named by `data_path` (only where the policy lets the page read the server's
    files). gr.Error when neither or both are given, or a new run would overwrite one."""
    data_path = (data_path or "").strip()
    if data_path and not policy.server_paths:
        raise gr.Error("This page trains on uploaded pictures only.")
    if uploads and data_path:
        raise gr.Error("Give the pictures either as uploads or as a folder on this machine, "
                       "not both.")
    exists = out.exists() and any(out.iterdir())
    if exists and not resume:
        raise gr.Error(f"A run named {out.name!r} exists; choose another name, or tick "
                       "'Resume' to continue it.")
    if data_path:
        return data_path
    data = out / "data"
    if uploads and resume and exists:
        raise gr.Error("A resumed run goes on with the pictures it began with: leave the "
                       "uploads empty.")
    if not uploads:
        if resume and data.is_dir():
            return str(data)
        raise gr.Error("Upload the pictures (with a same-named .txt caption each, or a "
                       ".csv / .jsonl list, or .tar shards), or name a folder.")
    data.mkdir(parents=True, exist_ok=True)
    for upload in uploads:
        source = Path(getattr(upload, "name", upload))
        shutil.copyfile(source, data / source.name)
    return str(data)


def train_config(values: dict, data: str, out: Path, backend: Backend) -> TrainConfig:
    """The run the tab's values ask for (checked by the loop: RequestError names a bad one)."""
    prompts = tuple(line.strip() for line in str(values["sample_prompts"] or "").splitlines()
                    if line.strip())
    manager = backend.manager
    every = int(values["sample_every"] or 0)
    return TrainConfig(
        data=data, out=str(out), model=values["model"],
        lora_rank=0 if values["kind"] == "Full" else int(values["lora_rank"]),
        steps=int(values["steps"]), batch_size=int(values["batch_size"]),
        lr=float(values["lr"]), sample_every=every, sample_prompts=prompts,
        sample_steps=int(values["sample_steps"]),
        checkpoint_every=every or DEFAULT.checkpoint_every, seed=int(values["seed"]),
        resume=bool(values["resume"]), models=manager.model_set,
        checkpoints=str(manager.checkpoints_dir), device=str(manager.device))


class _View:
    """The tab's outputs (status, plot, samples, result) as a run goes."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []
        self.base: list[tuple[str, str]] = []  # (path, caption) of the base model's samples
        self.latest: list[tuple[str, str]] = []
        self.saved_step = 0
        self.finetune: str | None = None
        self.sent = 0.0

    def gallery(self) -> list[tuple[str, str]]:
        if not (self.latest and self.base):
            return self.latest or self.base
        return [item for pair in zip(self.base, self.latest, strict=False) for item in pair]

    def outputs(self, status: str, result: Any = None) -> tuple:
        skip = gr.skip()
        return (status, _plot_frame(self.losses), self.gallery(),
                skip if result is None else result)

    def event(self, event: Any) -> tuple | None:
        kind = type(event).__name__
        if kind == "DataFound":
            return (progress_html(event.report.summary().splitlines()[0], 0.0), *skip3())
        if kind == "Started":
            return (progress_html(f"Training {event.trainable:,} weights ({event.precision})",
                                  event.step / event.total), *skip3())
        if kind == "Step":
            self.losses.append((event.step, event.loss))
            now = time.monotonic()
            if now - self.sent < UPDATE_INTERVAL and event.step != event.total:
                return None
            self.sent = now
            speed = event.step / event.seconds if event.seconds else 0.0
            detail = f"{speed:.2f} steps/s · about {format_seconds(event.eta)} left"
            return self.outputs(progress_html(f"Step {event.step}/{event.total} · loss "
                                              f"{event.loss:.4f}", event.step / event.total,
                                              detail))[:3] + (gr.skip(),)
        if kind == "Samples":
            tag = "base" if event.step == 0 else f"step {event.step}"
            items = [(str(path), f"{tag} · {prompt}")
                     for path, prompt in zip(event.paths, event.prompts, strict=True)]
            if event.step == 0:
                self.base = items
            else:
                self.latest = items
            return gr.skip(), gr.skip(), self.gallery(), gr.skip()
        if kind == "Saved":
            self.saved_step, self.finetune = event.step, str(event.finetune)
            return None
        if kind == "Finished":
            self.finetune = str(event.finetune)
            return self.outputs(progress_html(f"Done: {event.step} steps", 1.0),
                                _result_md(self.finetune, "Trained"))
        return None


def skip3() -> tuple:
    return gr.skip(), gr.skip(), gr.skip()


def _result_md(path: str, what: str) -> str:
    return (f"**{what}.** The fine-tune: `{path}`. Use it in the **Models** tab (every job "
            f"then runs with it), or with `--finetune {path}` on the command line.")


def train_run(values: dict, backend: Backend, stop: threading.Event,
              user: str | None) -> Iterator[tuple]:
    """The tab's updates for one run: (status HTML, loss frame, gallery, result Markdown)."""
    from glide_ui.training.loop import fine_tune

    policy = backend.training
    if policy.needs_login and not user:
        raise gr.Error("Log in to train on this page.")
    out = run_folder(backend.runs, values["name"], user)
    data = gather_data(values["uploads"], values["data_path"], out, bool(values["resume"]),
                       policy)
    events = fine_tune(train_config(values, data, out, backend), backend.manager)
    view = _View()
    try:
        for event in events:
            update = view.event(event)
            if update is not None:
                yield update
            if stop.is_set():
                break
    finally:
        events.close()
    if stop.is_set() and view.losses and view.losses[-1][0] < int(values["steps"]):
        kept = (f"the checkpoint of step {view.saved_step} is kept: tick 'Resume' to go on"
                if view.saved_step else "no checkpoint was written yet")
        status = progress_html(f"Stopped at step {view.losses[-1][0]}; {kept}.",
                               view.losses[-1][0] / int(values["steps"]))
        yield view.outputs(status, _result_md(view.finetune, "Stopped") if view.finetune
                           else "")


def build(backend: Backend) -> TrainHandles | None:
    """The tab's widgets and events (None: training is off on this page; it says why)."""
    policy = backend.training
    if not policy.enabled:
        gr.Markdown(f"⚠️ {policy.message}", elem_id="train-off")
        return None
    stops: dict[str | None, threading.Event] = {}

    def stop_for(request: gr.Request | None) -> threading.Event:
        return stops.setdefault(getattr(request, "session_hash", None), threading.Event())

    @user_errors
    def train(values: dict, request: gr.Request | None):
        stop = stop_for(request)
        stop.clear()
        yield from train_run(values, backend, stop, user_of(request))

    def stop_training(request: gr.Request = None) -> None:
        stop_for(request).set()

    if policy.message:
        gr.Markdown(policy.message, elem_id="train-rules")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            controls = _controls(policy)
            with gr.Row():
                run_button = gr.Button("Train", variant="primary")
                stop_button = gr.Button("Stop", variant="stop")
        with gr.Column(scale=5, min_width=320):
            status = gr.HTML(progress_html("Idle", 0.0), elem_id="train-status")
            plot = gr.LinePlot(_plot_frame([]), x="step", y="loss", title="Training loss",
                               elem_id="train-loss")
            samples = gr.Gallery(label="Samples: the base model's, then the latest", columns=2,
                                 height="auto", elem_id="train-samples")
            result = gr.Markdown(elem_id="train-result")
    handler, inputs = named_handler(train, controls)
    run = run_button.click(handler, inputs, [status, plot, samples, result], api_name="train",
                           concurrency_id=TRAIN_QUEUE, concurrency_limit=1,
                           show_progress="hidden")
    stop_button.click(stop_training, None, None, queue=False, api_name="stop_training")
    return TrainHandles(run)


def _controls(policy: TrainingPolicy) -> dict[str, gr.components.Component]:
    files = gr.File(label="Pictures and captions", file_count="multiple",
                    file_types=["image", ".txt", ".csv", ".jsonl", ".tar"],
                    elem_id="train-uploads")
    data_path = gr.Textbox("", label="Or a folder or list on this machine",
                           placeholder="/path/to/pictures", visible=policy.server_paths,
                           info="A folder of pictures with same-named .txt captions, a "
                                ".csv / .jsonl of path,caption, or .tar shards.")
    name = gr.Textbox("my-finetune", label="Run name", info="Its folder holds the checkpoint, "
                      "the fine-tune file, log.csv and the samples.")
    with gr.Row():
        model = gr.Dropdown(list(MODEL_NAMES), value=DEFAULT.model, label="Model")
        kind = gr.Radio(list(KINDS), value="LoRA", label="Train",
                        info="LoRA: a small adapter; Full: every weight")
        lora_rank = gr.Number(DEFAULT.lora_rank, precision=0, label="LoRA rank", minimum=1)
    with gr.Row():
        steps = gr.Number(DEFAULT.steps, precision=0, label="Steps", minimum=1)
        lr = gr.Number(DEFAULT.lr, label="Learning rate")
        batch_size = gr.Number(DEFAULT.batch_size, precision=0, label="Batch size", minimum=1)
    with gr.Row():
        sample_every = gr.Number(50, precision=0, label="Samples every N steps", minimum=0,
                                 info="0: before and after only")
        sample_steps = gr.Number(DEFAULT.sample_steps, precision=0, label="Sample steps",
                                 minimum=2, info="DDIM steps of each sample")
        seed = gr.Number(DEFAULT.seed, precision=0, label="Seed")
    sample_prompts = gr.Textbox("", lines=2, label="Sample prompts",
                                info="One a line (default: the first two captions).")
    resume = gr.Checkbox(False, label="Resume the run of this name")
    return {"uploads": files, "data_path": data_path, "name": name, "model": model,
            "kind": kind, "lora_rank": lora_rank, "steps": steps, "lr": lr,
            "batch_size": batch_size, "sample_every": sample_every,
            "sample_steps": sample_steps, "seed": seed,
            "sample_prompts": sample_prompts, "resume": resume}
