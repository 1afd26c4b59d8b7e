"""Seconds per denoising step through the app's own sampling path, settings side by side.

    python -m bench.steps [--runs 5] [--stage base] [--dtype bf16]

A stage is the pipeline's own generator (`text2im.guided_base`: batch 1 with classifier-
free guidance, one model call on 2 rows per step; `common.upsample`: batch 1), on
full-size models with seeded random weights built through the ModelManager. The stages
of the settings compared are advanced in turn, one step each, so a neighbour's burst on
a shared machine slows both alike. A step's time runs from resuming the stage after the
previous step's events to its next Progress event; the first two steps (text encoding,
first preview, allocator warm-up) are left out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import torch

from bench.forward import CASES, make_inputs
from bench.pipeline import FullSizeRandomManager
from glide_ui import heap
from glide_ui.pipelines.common import PreviewSettings, upsample
from glide_ui.pipelines.events import Progress
from glide_ui.pipelines.requests import Text2ImRequest
from glide_ui.pipelines.text2im import guided_base

PROMPT = "a corgi in a field of flowers"
WARM_STEPS = 2  # left out of the timings
NO_PREVIEWS = 3600.0  # preview interval: only the first and last step show one


@dataclass
class StepTimes:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def median(self) -> dict[str, float]:
        return {"wall_s": statistics.median(self.wall), "cpu_s": statistics.median(self.cpu),
                "min_wall_s": min(self.wall), "steps": len(self.wall)}


def stage(model: torch.nn.Module, name: str, steps: int) -> Generator:
    """The pipeline stage of `name` ("base" or "upsample") for `steps` steps, batch 1."""
    preview = PreviewSettings(NO_PREVIEWS)
    if name.startswith("base"):
        request = Text2ImRequest(prompt=PROMPT, base_respacing=str(steps),
                                 preview_interval=NO_PREVIEWS)
        return guided_base(model, request, [0])
    low_res = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return upsample(model, PROMPT, low_res, [0], str(steps), "ddim", 0.997, preview)


def reference_forwards(model: torch.nn.Module, name: str, steps: int) -> Generator:
    """The reference's own step, `steps` times: one forward of the same batch (base: 2 rows
    for one image with CFG, 64 px; upsampler: 1 row, 256 px) with the text encoded inside
    every forward, as the reference does, on a contiguous fp32 model (its arithmetic), with
    glibc's default heap (large blocks mapped afresh: see glide_ui.heap)."""
    batch, size = CASES[name]
    inputs = make_inputs(model.options, batch, size)
    with torch.inference_mode():
        for step in range(1, steps + 1):
            heap.keep_heap(False)
            try:
                model(**inputs)
            finally:
                heap.keep_heap(True)
            yield Progress("reference", step, steps)


def _next_step(events: Generator) -> tuple[float, float] | None:
    """Advance to the next Progress event: (wall, cpu) seconds, or None at the end."""
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        while not isinstance(next(events), Progress):
            start, start_cpu = time.perf_counter(), time.process_time()  # a preview ended
    except StopIteration:
        return None
    return time.perf_counter() - start, time.process_time() - start_cpu


def interleaved(stages: dict[str, Generator]) -> dict[str, StepTimes]:
    """Step the stages in turn until all end; per-stage step times after the warm-up."""
    times = {label: StepTimes() for label in stages}
    live = dict(stages)
    step = 0
    while live:
        for label, events in list(live.items()):
            result = _next_step(events)
            if result is None:
                del live[label]
            elif step >= WARM_STEPS:
                times[label].wall.append(result[0])
                times[label].cpu.append(result[1])
        step += 1
    return times


def compare(name: str, managers: dict[str, FullSizeRandomManager], runs: int,
            reference: torch.nn.Module | None = None) -> dict:
    """Median step times of model `name` under each manager's setting, interleaved (and of
    the reference's forward on `reference`, labelled "reference", when given)."""
    steps = runs + WARM_STEPS
    stages = {label: stage(manager.get(name), name, steps)
              for label, manager in managers.items()}
    if reference is not None:
        stages["reference"] = reference_forwards(reference, name, steps)
    return {label: t.median() for label, t in interleaved(stages).items()}


def reference_model(name: str) -> torch.nn.Module:
    """Model `name` at full size (the same seeded weights as FullSizeRandomManager's), fp32,
    contiguous: the arithmetic of the reference implementation (tests/test_parity.py)."""
    model = FullSizeRandomManager(device="cpu", dtype="fp32").get(name)
    return model.to(memory_format=torch.contiguous_format)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed steps per setting")
    parser.add_argument("--stage", choices=["base", "upsample"], action="append")
    parser.add_argument("--dtype", default="bf16", help="the setting compared with fp32")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in args.stage or ["base", "upsample"]:
        managers = {"fp32": FullSizeRandomManager(device="cpu", dtype="fp32"),
                    args.dtype: FullSizeRandomManager(device="cpu", dtype=args.dtype)}
        result = compare(name, managers, args.runs)
        for label, figures in result.items():
            print(f"{name} {label}: {figures['wall_s']:.3f} s/step (cpu time "
                  f"{figures['cpu_s']:.3f} s), {figures['steps']} steps", flush=True)
        print(f"{name}: {args.dtype} / fp32 = "
              f"{result[args.dtype]['wall_s'] / result['fp32']['wall_s']:.2f}", flush=True)


if __name__ == "__main__":
    main()
