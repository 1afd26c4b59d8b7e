"""The job registry: each job of `glide_ui.settings.JOBS` with its request type and its
pipeline, in one table every front reads (`Glide`, sweeps, reruns, the command line)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from glide_ui.errors import RequestError
from glide_ui.pipelines.clip_guided import clip_guided
from glide_ui.pipelines.events import Event
from glide_ui.pipelines.inpaint import inpaint
from glide_ui.pipelines.outpaint import outpaint
from glide_ui.pipelines.requests import REQUEST_TYPES
from glide_ui.pipelines.sketch import sketch
from glide_ui.pipelines.text2im import text2im
from glide_ui.pipelines.upscale import upscale
from glide_ui.pipelines.variations import variations
from glide_ui.settings import JOBS as INFO
from glide_ui.settings import JobInfo, job_info

Pipeline = Callable[[Any, Any], Iterator[Event]]


@dataclass(frozen=True)
class Job:
    """A job: its names, tab and models (`info`), its request type and its pipeline."""

    info: JobInfo
    request: type
    run: Pipeline

    @property
    def name(self) -> str:
        return self.info.name


_RUNS: dict[str, Pipeline] = {"text2im": text2im, "clip_guided": clip_guided,
                              "inpaint": inpaint, "outpaint": outpaint, "sketch": sketch,
                              "variations": variations, "upscale": upscale}
JOBS: dict[str, Job] = {name: Job(info, REQUEST_TYPES[name], _RUNS[name])
                        for name, info in INFO.items()}


def job(name: str) -> Job:
    """The job called `name` (canonical, as recipes record it, or an alias such as
    "generate"); RequestError naming the jobs for anything else."""
    try:
        return JOBS[job_info(name).name]
    except KeyError:
        raise RequestError(f"Unknown pipeline {name!r}; choose one of "
                           f"{', '.join(JOBS)}.") from None


def job_of(request: Any) -> Job:
    """The job whose request `request` is."""
    return JOBS[type(request).job]
