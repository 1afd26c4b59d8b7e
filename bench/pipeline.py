"""What the pipeline adds around the networks: previews on vs off, first preview latency.

    python -m bench.pipeline [--base-respacing ddim10] [--upsample-respacing 3] [--runs 1]

Full-size GLIDE models with seeded random weights (the tiny set's initialisation at the
official sizes, built through the ModelManager), batch 1, text2im with classifier-free
guidance then the upsampler. After a warm-up run, runs with previews on (every
`--preview-interval` seconds, the app's default 0.5 s) and off (only the first and last
step of each stage, which the pipeline always shows) alternate.

Two views of the cost of previews. (1) Per step: a step's time is the gap between
consecutive Progress events of a stage (so it includes the preview made after the
previous step), median per stage, with previews on and off. On a shared 2-core machine a
neighbour's burst moves these medians by more than the previews do, so (2) the overhead
on the last line is measured directly inside the runs with previews on: the time from a
Progress event to the Preview that follows it (making the preview images) over the rest
of the run. The first preview latency is from the call to the first Preview event, with
warm models.

The last line reads `preview overhead: X%; first preview after Y s`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from glide_ui.glide.options import MODEL_NAMES, full_options
from glide_ui.images import tensor_to_pil
from glide_ui.models import ModelManager
from glide_ui.pipelines.events import Preview, Progress
from glide_ui.pipelines.requests import Text2ImRequest, respacing_steps
from glide_ui.pipelines.text2im import text2im


class FullSizeRandomManager(ModelManager):
    """The tiny set's seeded random weights, but at the official sizes (no files)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(model_set="tiny", **kwargs)

    def options(self, name: str) -> dict[str, Any]:
        return full_options(name) if name in MODEL_NAMES else super().options(name)


@dataclass
class RunTiming:
    steps: dict[str, list[float]] = field(default_factory=dict)  # stage -> step gaps (s)
    first_preview: float = float("nan")
    total: float = 0.0
    previews: int = 0
    preview_seconds: float = 0.0  # spent making previews (Progress -> Preview gaps)


def timed_run(manager: ModelManager, request: Text2ImRequest) -> RunTiming:
    timing = RunTiming()
    last: dict[str, float] = {}
    start = previous = time.perf_counter()
    for event in text2im(request, manager):
        now = time.perf_counter()
        if isinstance(event, Progress):
            if event.stage in last:
                timing.steps.setdefault(event.stage, []).append(now - last[event.stage])
            last[event.stage] = now
        elif isinstance(event, Preview):
            timing.previews += 1
            timing.preview_seconds += now - previous
            if timing.previews == 1:
                timing.first_preview = now - start
        previous = now
    timing.total = time.perf_counter() - start
    return timing


def conversion_ms(size: int, repeats: int = 20) -> float:
    """Median milliseconds to turn one predicted image into a PIL preview."""
    x = torch.rand(1, 3, size, size) * 2 - 1
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tensor_to_pil(x)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def median_steps(runs: list[RunTiming]) -> dict[str, float]:
    stages = {stage for run in runs for stage in run.steps}
    return {stage: statistics.median(gap for run in runs for gap in run.steps.get(stage, []))
            for stage in sorted(stages)}


def preview_overhead(manager: ModelManager, base_respacing: str, upsample_respacing: str,
                     runs: int = 1, interval: float = 0.5) -> dict[str, Any]:
    """Runs text2im with previews on and off (after a warm-up run) and measures what the
    previews add; the figures `main` prints, as a dict."""
    for name in ("base", "upsample"):
        manager.get(name)
    request = Text2ImRequest(prompt="a corgi in a field of flowers", seed=0,
                             base_respacing=base_respacing,
                             upsample_respacing=upsample_respacing)
    timed_run(manager, Text2ImRequest(prompt="warm up", seed=1, base_respacing="2",
                                      upsample_respacing="2"))
    modes = {"on": interval, "off": 3600.0}
    timings: dict[str, list[RunTiming]] = {mode: [] for mode in modes}
    for _ in range(runs):
        for mode, seconds in modes.items():
            run = timed_run(manager, replace(request, preview_interval=seconds))
            timings[mode].append(run)
            print(f"  previews {mode:3s}: {run.total:7.1f} s, {run.previews} previews, "
                  f"first preview after {run.first_preview:.2f} s", flush=True)
    medians = {mode: median_steps(runs_) for mode, runs_ in timings.items()}
    spent = sum(run.preview_seconds for run in timings["on"])
    total = sum(run.total for run in timings["on"])
    return {
        "base_respacing": base_respacing, "upsample_respacing": upsample_respacing,
        "interval_s": interval, "runs": runs,
        "step_s": {mode: medians[mode] for mode in modes},
        "previews_per_run": timings["on"][0].previews,
        "preview_seconds_per_run": spent / runs, "run_seconds": total / runs,
        "overhead_percent": 100 * spent / (total - spent),
        "first_preview_s": statistics.median(
            run.first_preview for runs_ in timings.values() for run in runs_),
        "conversion_ms": {size: conversion_ms(size) for size in (64, 256)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-respacing", default="ddim10")
    parser.add_argument("--upsample-respacing", default="3")
    parser.add_argument("--preview-interval", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=1, help="timed runs per mode")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    args = parser.parse_args()

    manager = FullSizeRandomManager(device=args.device, dtype=args.dtype)
    base_steps = respacing_steps("base", args.base_respacing)[1]
    up_steps = respacing_steps("upsample", args.upsample_respacing)[1]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device "
          f"{manager.device}, {str(manager.dtype).removeprefix('torch.')}, {_load()}")
    print(f"text2im batch 1: base {args.base_respacing} ({base_steps} steps, CFG = 2 rows), "
          f"upsampler {args.upsample_respacing} ({up_steps} steps)", flush=True)
    start = time.perf_counter()
    for name in ("base", "upsample"):
        manager.get(name)
    print(f"built full-size random models in {time.perf_counter() - start:.1f} s", flush=True)
    print_preview_overhead(preview_overhead(manager, args.base_respacing,
                                            args.upsample_respacing, args.runs,
                                            args.preview_interval))


def print_preview_overhead(result: dict[str, Any]) -> None:
    on, off = result["step_s"]["on"], result["step_s"]["off"]
    print("  (whole runs drift with the machine's load; the overhead below is the time spent "
          "making previews, measured directly)")
    for stage in on:
        print(f"median {stage} step: {on[stage]:.3f} s with previews, {off[stage]:.3f} s "
              f"without ({100 * (on[stage] / off[stage] - 1):+.1f}%)")
    for size, ms in result["conversion_ms"].items():
        print(f"making one preview image at {size} px: {ms:.2f} ms")
    print(f"previews on: {1000 * result['preview_seconds_per_run']:.0f} ms of previews per "
          f"{result['run_seconds']:.1f} s run; {_load()}")
    print(f"preview overhead: {result['overhead_percent']:.2f}%; first preview after "
          f"{result['first_preview_s']:.2f} s")


def _load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
