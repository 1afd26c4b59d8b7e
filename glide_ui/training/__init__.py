"""Fine-tuning GLIDE on your own pictures: LoRA (peft) or every weight, for the base,
upsampler and inpainting models. `fine_tune(config)` is the run as a generator of events;
`train(data, out, ...)` runs it to the end with a progress bar and returns the fine-tune
file, which `ModelManager(finetunes=...)` / `Glide(finetunes=...)` use.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

from glide_ui.errors import RequestError
from glide_ui.training.config import TrainConfig

# Imported on first use (PEP 562): the CLI reads TrainConfig's defaults without torch.
_EXPORTS = {"DataError": "data", "DataReport": "data", "scan": "data",
            **{name: "loop" for name in ("DataFound", "Finished", "Samples", "Saved",
                                         "Started", "Step", "fine_tune")}}

__all__ = ["TrainConfig", "drive", "train", *_EXPORTS]

def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'glide_ui.training' has no attribute {name!r}")
    return getattr(import_module(f"glide_ui.training.{_EXPORTS[name]}"), name)

SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("data", "out"))


def train(data: str | Path, out: str | Path, *, manager: Any = None, progress: bool = True,
          on_event: Callable[[Any], None] | None = None, **settings: Any) -> Path:
    """Fine-tune a GLIDE model on the pictures at `data`, writing the run to folder `out`;
    the fine-tune file's path. settings: the fields of `TrainConfig` (model="base",
    steps, batch_size, lr, lora_rank (0: full), ...). Raises DataError for unusable data,
    RequestError for a bad setting (both GlideUIError); Ctrl-C stops, keeping the last
    checkpoint (resume=True continues)."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise RequestError(f"Unknown training setting {', '.join(unknown)}; known: "
                           f"{', '.join(SETTINGS)}.")
    from glide_ui.training.loop import fine_tune

    config = TrainConfig(data=str(data), out=str(out), **settings)
    return drive(fine_tune(config, manager), progress, on_event).finetune


def drive(events: Iterator[Any], progress: bool = True,
          on_event: Callable[[Any], None] | None = None,
          say: Callable[[str], None] | None = None) -> Any:
    """Run a fine-tuning to the end: a tqdm bar of steps and loss, lines for the data
    report, checkpoints and samples (to `say`, default stderr). The Finished event."""
    from tqdm.auto import tqdm

    from glide_ui.training.loop import DataFound, Finished, Samples, Saved, Started, Step

    say = say or (lambda text: tqdm.write(text, file=sys.stderr))
    bar = None
    try:
        for event in events:
            if on_event is not None:
                on_event(event)
            if isinstance(event, DataFound):
                say(event.report.summary())
            elif isinstance(event, Started):
                bar = tqdm(total=event.total, initial=event.step, unit="step", file=sys.stderr,
                           disable=not progress, desc=f"training ({event.precision})")
            elif isinstance(event, Step) and bar is not None:
                bar.update(event.step - bar.n)
                bar.set_postfix(loss=f"{event.loss:.4f}")
            elif isinstance(event, Samples):
                say(f"samples at step {event.step}: " + ", ".join(map(str, event.paths)))
            elif isinstance(event, Saved):
                say(f"checkpoint at step {event.step}: {event.finetune}")
            elif isinstance(event, Finished):
                return event
    finally:
        if bar is not None:
            bar.close()
        close = getattr(events, "close", None)
        if close is not None:
            close()
    raise RuntimeError("the training ended without finishing")
