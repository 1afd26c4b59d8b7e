"""A whole default text2im sample against the Fast preset, base and upsampler.

    python -m bench.solvers [--runs 4]

Full-size GLIDE models with seeded random weights (bench.pipeline), batch 1, this
machine's default compute path. Each stage runs through the pipeline's own generators
(`text2im.guided_base` with classifier-free guidance, `common.upsample`) with the
reference sampler of the default request and with the Fast preset's solver; the stages
of a pair are advanced in turn, one step each (bench.steps.interleaved), so a neighbour's
load slows both alike. The whole-sample times are ESTIMATES: the median seconds per step
times the step counts of the default request (100 ancestral base steps, fast27 DDIM
upsampler steps) and of the Fast preset. Target: Fast <= 0.3 x default.
"""

from __future__ import annotations

import argparse
from collections.abc import Generator
from typing import Any

import torch

from bench.pipeline import FullSizeRandomManager
from bench.steps import NO_PREVIEWS, PROMPT, WARM_STEPS, interleaved
from glide_ui.pipelines.common import PreviewSettings, upsample
from glide_ui.pipelines.requests import FAST_PRESET, Text2ImRequest, respacing_steps
from glide_ui.pipelines.text2im import guided_base

TARGET = 0.3


def settings() -> dict[str, dict[str, tuple[str, str]]]:
    """stage -> {"default" | "fast": (sampler, respacing)}."""
    default = Text2ImRequest(prompt=PROMPT)
    return {"base": {"default": (default.sampler, default.base_respacing),
                     "fast": (FAST_PRESET["sampler"], FAST_PRESET["base_respacing"])},
            "upsample": {"default": (default.upsample_sampler, default.upsample_respacing),
                         "fast": (FAST_PRESET["upsample_sampler"],
                                  FAST_PRESET["upsample_respacing"])}}


def stage(model: torch.nn.Module, name: str, sampler: str, steps: int) -> Generator:
    """The pipeline stage `name` with `sampler` for `steps` steps, batch 1, no previews."""
    if name == "base":
        request = Text2ImRequest(prompt=PROMPT, base_respacing=str(steps), sampler=sampler,
                                 preview_interval=NO_PREVIEWS)
        return guided_base(model, request, [0])
    low_res = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return upsample(model, PROMPT, low_res, [0], str(steps), sampler, 0.997,
                    PreviewSettings(NO_PREVIEWS))


def measure(runs: int, manager: FullSizeRandomManager | None = None) -> dict[str, Any]:
    """Estimated whole-sample seconds of the default request and of the Fast preset from
    `runs` timed steps per stage and setting."""
    manager = manager or FullSizeRandomManager()
    steps = runs + WARM_STEPS
    report: dict[str, Any] = {"path": manager.path.describe(), "stages": {}}
    totals = {"default": 0.0, "fast": 0.0}
    for name, choices in settings().items():
        model = manager.get(name)
        times = interleaved({key: stage(model, name, sampler, steps)
                             for key, (sampler, _) in choices.items()})
        for key, (sampler, respacing) in choices.items():
            per_step = times[key].median()["wall_s"]
            count = respacing_steps("steps", respacing)[1]
            report["stages"][f"{name}/{key}"] = {"sampler": sampler, "steps": count,
                                                 "step_s": per_step,
                                                 "estimate_s": per_step * count}
            totals[key] += per_step * count
    report["default_s"], report["fast_s"] = totals["default"], totals["fast"]
    report["ratio"] = totals["fast"] / totals["default"]
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"Fast preset vs default sample, batch 1, {report['path']} "
          "(estimates: median s/step through the pipeline x step count)")
    for key, row in report["stages"].items():
        print(f"  {key:18s} {row['sampler']:10s} {row['steps']:4d} steps x "
              f"{row['step_s']:.3f} s = {row['estimate_s']:7.1f} s")
    verdict = "meets" if report["ratio"] <= TARGET else "MISSES"
    print(f"  whole sample: default {report['default_s']:.1f} s, Fast {report['fast_s']:.1f} s"
          f" = {report['ratio']:.2f} x default ({verdict} the target <= {TARGET} x)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="timed steps per setting")
    args = parser.parse_args(argv)
    print_report(measure(args.runs))


if __name__ == "__main__":
    main()
