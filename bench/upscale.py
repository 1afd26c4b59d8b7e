"""What does upscaling 256 -> 1024 px cost? `python -m bench.upscale`

    python -m bench.upscale [--scale 4] [--windows N] [--steps N] [--json FILE]

For the default settings and the Fast preset (DPM-Solver++ 2M, 10 upsampler steps), each
in a fresh process on the full-size upsample-inpaint model with random weights (no
checkpoint needed): the windows of the plan, the model steps, seconds per step and per
window, the whole upscale's seconds (measured, or with --windows / --steps estimated
from the steps measured: seconds per step x steps x windows) and the process's peak RSS.
--windows N runs only the first N windows, --steps N runs N steps per window: enough to
try it in a few minutes; the full measurement runs every window at the setting's steps.
The machine's load average is printed: on a shared machine the seconds stretch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any
from unittest import mock

import numpy as np
import torch
from PIL import Image

from bench.pipeline import FullSizeRandomManager
from glide_ui.pipelines.events import Progress
from glide_ui.pipelines.requests import respacing_steps
from glide_ui.pipelines.upscale_request import UpscaleRequest
from glide_ui.settings import FAST_PRESET, SETTINGS

SETTING_NAMES = ("default", "fast")


def settings(name: str) -> dict[str, str]:
    """The upsampler's sampler and steps of the default or the Fast settings."""
    if name == "fast":
        return {key: FAST_PRESET[key] for key in ("upsample_sampler", "upsample_respacing")}
    return {key: SETTINGS[key].default_for("upscale")
            for key in ("upsample_sampler", "upsample_respacing")}


def measure(name: str, scale: int, windows: int | None, steps: int | None) -> dict[str, Any]:
    """One setting's figures, in this process (see the module docstring)."""
    module = importlib.import_module("glide_ui.pipelines.upscale")  # (the package's is the
    # function)
    chosen = settings(name)
    full_steps = respacing_steps("steps", chosen["upsample_respacing"])[1]
    if steps is not None:
        chosen["upsample_respacing"] = str(steps)
    size = 1024 // scale
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    request = UpscaleRequest(image=picture, prompt="a photo of a lighthouse", scale=scale,
                             seed=1, preview_interval=0.5, **chosen)
    plan = module.plan_upscale(picture.size, scale, request.overlap)
    run_windows = len(plan.windows) if windows is None else min(windows, len(plan.windows))

    whole_plan = module.plan_upscale

    def limited(*args: Any) -> Any:
        whole = whole_plan(*args)
        return replace(whole, windows=whole.windows[:run_windows])

    manager = FullSizeRandomManager(device="cpu")
    start = time.perf_counter()
    gaps, first, last = [], None, None
    with mock.patch.object(module, "plan_upscale", limited):
        for event in module.upscale(request, manager):
            if isinstance(event, Progress):
                now = time.perf_counter()
                if last is not None and event.step > 1:
                    gaps.append(now - last)
                first = first or now
                last = now
    ran = time.perf_counter() - (first or start)
    step_s = statistics.median(gaps) if gaps else float("nan")
    return {"setting": name, "sampler": request.upsample_sampler, "scale": scale,
            "picture": list(picture.size), "result": list(plan.canvas),
            "windows": len(plan.windows), "windows_run": run_windows,
            "steps_per_window": full_steps, "steps_run": steps or full_steps,
            "step_s": step_s, "measured_s": ran,
            "whole_s": ran if (run_windows, steps or full_steps) == (len(plan.windows),
                                                                      full_steps)
            else step_s * full_steps * len(plan.windows),
            "estimated": windows is not None or steps is not None,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "dtype": str(manager.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads()}


def show(row: dict[str, Any]) -> str:
    how = "estimated from the steps run" if row["estimated"] else "measured"
    return (f"{row['setting']:>7} ({row['sampler']}, {row['steps_per_window']} steps): "
            f"{row['picture'][0]} -> {row['result'][0]} px, {row['windows']} windows x "
            f"{row['steps_per_window']} steps = {row['windows'] * row['steps_per_window']} "
            f"steps; {row['step_s']:.2f} s/step; whole {row['whole_s'] / 60:.1f} min ({how}; "
            f"ran {row['windows_run']} window(s) x {row['steps_run']} steps in "
            f"{row['measured_s']:.0f} s); peak RSS {row['peak_rss_bytes'] / 2**30:.2f} GiB "
            f"({row['dtype']}, {row['threads']} threads)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upscale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, choices=(4, 2), default=4)
    parser.add_argument("--windows", type=int, help="run only the first N windows")
    parser.add_argument("--steps", type=int, help="run N steps per window")
    parser.add_argument("--setting", choices=SETTING_NAMES, help="one setting, in this process")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if args.setting:  # a child: one line of JSON
        print(json.dumps(measure(args.setting, args.scale, args.windows, args.steps)))
        return 0
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for name in SETTING_NAMES:
        command = [sys.executable, "-m", "bench.upscale", "--setting", name,
                   "--scale", str(args.scale)]
        for flag in ("windows", "steps"):
            if getattr(args, flag) is not None:
                command += [f"--{flag}", str(getattr(args, flag))]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(show(rows[-1]), flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(rows, file, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
