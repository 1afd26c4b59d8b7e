"""All the benchmarks in one command; prints each figure with its setting, writes JSON.

    python -m bench --json bench.json [--runs 5] [--lever-runs 3] [--skip-levers]

Full-size GLIDE models with random weights (no checkpoint needed). Sections:
  cpu       seconds per denoising step through the app's own sampling path with the
            fastest CPU setting (`--dtype bf16`), and the fp32 path (which equals the
            reference numerically, tests/test_parity.py) in the same process on the
            same weights, steps interleaved; their ratio against the 0.35 target
  levers    each speed lever on one forward (bench.levers)
  flops     per forward and per full text2im sample
  memory    bytes of base + upsampler in bf16 against a 16 GB laptop's default budget
  steps     the default step counts and faster choices, with estimated times
  previews  what live previews add to a run (bench.pipeline)
  gpu       only when CUDA is present (bench.gpu)
The machine's load average is recorded at the start and end: on a shared machine wall
times stretch, so process CPU time is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any
from unittest import mock

import psutil
import torch

from bench import levers, steps
from bench.forward import CASES, count_flops, make_inputs
from bench.pipeline import FullSizeRandomManager, preview_overhead, print_preview_overhead
from glide_ui import models
from glide_ui.glide import nn as glide_nn
from glide_ui.glide.options import full_options
from glide_ui.pipelines.requests import Text2ImRequest, respacing_steps

TARGET_RATIO = 0.35
FAST_DTYPE = "bf16"
LAPTOP_BYTES = 16 * 10**9  # "16 GB" as sold; a little less than 16 GiB
STEP_CHOICES = {"base": ["100", "50", "ddim50", "ddim25"], "upsample": ["fast27", "ddim15"]}


def machine() -> dict[str, Any]:
    flags = ""
    if Path("/proc/cpuinfo").exists():
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                      if line.startswith("model name")), platform.processor())
        flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    else:
        model = platform.processor()
    return {"cpu": model, "logical_cpus": psutil.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "memory_bytes": psutil.virtual_memory().total,
            "load_average_start": os.getloadavg()}


def setting() -> str:
    packing = (f"oneDNN-prepacked weights for inputs <= {glide_nn.PACK_MAX_PIXELS} px"
               if glide_nn.PREPACKING else "no prepacking (oneDNN ops unavailable)")
    return (f"--dtype {FAST_DTYPE}: bf16 weights, channels_last, fused GroupNorm+SiLU, "
            f"{packing}, SDPA attention, text encoded once per request, "
            f"{torch.get_num_threads()} threads (torch default)")


def cpu_section(runs: int) -> tuple[dict[str, Any], dict[str, FullSizeRandomManager]]:
    managers = {"fp32": FullSizeRandomManager(device="cpu", dtype="fp32"),
                FAST_DTYPE: FullSizeRandomManager(device="cpu", dtype=FAST_DTYPE)}
    per_stage = {}
    for name in ("base", "upsample"):
        per_stage[name] = steps.compare(name, managers, runs)
        managers["fp32"].release(name)
        fast, fp32 = per_stage[name][FAST_DTYPE], per_stage[name]["fp32"]
        shape = "batch 1 with CFG = 2 rows, 64 px" if name == "base" else "batch 1, 256 px"
        print(f"{name} step ({shape}, median of {fast['steps']}): "
              f"{FAST_DTYPE} {fast['wall_s']:.3f} s "
              f"(cpu {fast['cpu_s']:.3f} s), fp32 {fp32['wall_s']:.3f} s "
              f"(cpu {fp32['cpu_s']:.3f} s): x{fast['wall_s'] / fp32['wall_s']:.2f} "
              f"(target <= {TARGET_RATIO})", flush=True)
    ratio = {name: per_stage[name][FAST_DTYPE]["wall_s"] / per_stage[name]["fp32"]["wall_s"]
             for name in per_stage}
    cpu_ratio = {name: per_stage[name][FAST_DTYPE]["cpu_s"] / per_stage[name]["fp32"]["cpu_s"]
                 for name in per_stage}
    section = {
        "base_step_s": per_stage["base"][FAST_DTYPE]["wall_s"],
        "upsample_step_s": per_stage["upsample"][FAST_DTYPE]["wall_s"],
        "setting": setting(),
        "path": "pipelines.text2im.guided_base (batch 1, CFG = 2 rows, 64 px) and "
                "pipelines.common.upsample (batch 1, 256 px), steps interleaved with fp32",
        "runs": runs,
        "fp32": {"base_step_s": per_stage["base"]["fp32"]["wall_s"],
                 "upsample_step_s": per_stage["upsample"]["fp32"]["wall_s"],
                 "setting": "fp32, contiguous (--dtype fp32, the default on CPUs without bf16 "
                            "hardware; equals the reference "
                            "numerically, tests/test_parity.py)"},
        "ratio_to_fp32": ratio, "cpu_time_ratio_to_fp32": cpu_ratio,
        "target_ratio": TARGET_RATIO,
        "meets_target": all(r <= TARGET_RATIO for r in ratio.values()),
        "detail": per_stage,
        "reference_fp32_forward_s": {"base": 3.7, "upsample": 10.3,
                                     "note": "the reference's own fp32 forward, measured "
                                             "earlier on this machine kind (code not here)"},
    }
    return section, managers


def flops_section() -> dict[str, Any]:
    per_forward = {}
    for name, (batch, size) in CASES.items():
        options = full_options(name)
        per_forward[name] = count_flops(options, make_inputs(options, batch, size))
    base_steps = respacing_steps("base", Text2ImRequest.base_respacing)[1]
    up_steps = respacing_steps("upsample", Text2ImRequest.upsample_respacing)[1]
    sample = base_steps * per_forward["base"] + up_steps * per_forward["upsample"]
    print(f"FLOPs: base forward (batch 2) {per_forward['base'] / 1e9:.0f} GFLOP, upsampler "
          f"forward (batch 1) {per_forward['upsample'] / 1e9:.0f} GFLOP; a text2im sample "
          f"({base_steps} + {up_steps} steps) {sample / 1e12:.1f} TFLOP", flush=True)
    return {"base_forward_flop": per_forward["base"],
            "upsample_forward_flop": per_forward["upsample"],
            "text2im_sample_flop": sample, "sample_steps": [base_steps, up_steps]}


def memory_section(manager: FullSizeRandomManager) -> dict[str, Any]:
    """Weights of base + upsampler as the manager holds them in bf16 (plus the prepacked
    copies made while sampling) against the default budget of a 16 GB machine."""
    names = ("base", "upsample")
    weights = {name: models.model_bytes(manager.get(name)) for name in names}
    packed = {name: glide_nn.packed_bytes(manager.get(name)) for name in names}
    with mock.patch.dict(os.environ, {models.MEMORY_ENV: ""}), \
            mock.patch.object(psutil, "virtual_memory",
                              return_value=mock.Mock(total=LAPTOP_BYTES)):
        budget = models.default_budget(torch.device("cpu"))
    total = sum(weights.values()) + sum(packed.values())
    fp32 = {name: models.model_bytes(manager.get(name)) * 2 for name in names}
    print(f"memory: base {weights['base'] / 1e9:.2f} GB + upsampler "
          f"{weights['upsample'] / 1e9:.2f} GB in bf16, + {sum(packed.values()) / 1e9:.2f} GB "
          f"prepacked copies = {total / 1e9:.2f} GB; default budget on a 16 GB machine "
          f"{budget / 1e9:.2f} GB: {'fits' if total <= budget else 'DOES NOT FIT'} "
          f"(fp32 would take {sum(fp32.values()) / 1e9:.2f} GB)", flush=True)
    return {"weights_bytes_bf16": weights, "prepacked_bytes": packed, "total_bytes": total,
            "weights_bytes_fp32": fp32, "laptop_bytes": LAPTOP_BYTES,
            "default_budget_bytes": budget, "fits": total <= budget,
            "note": "the manager counts weights and room for the prepacked copies; "
                    "activations and the app live in the rest"}


def steps_section(cpu: dict[str, Any]) -> dict[str, Any]:
    defaults = Text2ImRequest(prompt="")
    per_step = {"base": cpu["base_step_s"], "upsample": cpu["upsample_step_s"]}
    choices = {}
    for stage, specs in STEP_CHOICES.items():
        for spec in specs:
            count = respacing_steps(stage, spec)[1]
            choices[f"{stage} {spec}"] = {"steps": count, "seconds": count * per_step[stage]}
    print(f"defaults: base {defaults.base_respacing} ({defaults.sampler}), upsampler "
          f"{defaults.upsample_respacing} ({defaults.upsample_sampler}), as the reference "
          f"notebook; estimated seconds with the fast CPU setting:", flush=True)
    for label, choice in choices.items():
        print(f"  {label:18s} {choice['steps']:4d} steps  {choice['seconds']:7.1f} s")
    return {"defaults": {"base_respacing": defaults.base_respacing,
                         "sampler": defaults.sampler,
                         "upsample_respacing": defaults.upsample_respacing,
                         "upsample_sampler": defaults.upsample_sampler},
            "choices": choices}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--runs", type=int, default=5, help="timed steps per setting")
    parser.add_argument("--lever-runs", type=int, default=3, help="timed forwards per lever")
    parser.add_argument("--skip-levers", action="store_true")
    parser.add_argument("--preview-runs", type=int, default=1)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report: dict[str, Any] = {"machine": machine()}
    info = report["machine"]
    print(f"{info['cpu']}: {info['physical_cores']} cores, torch {info['torch']} with "
          f"{info['torch_threads']} threads, AMX-bf16 {info['amx_bf16']}; load average "
          f"{info['load_average_start'][0]:.1f}", flush=True)
    report["flops"] = flops_section()
    report["cpu"], managers = cpu_section(args.runs)
    report["memory"] = memory_section(managers[FAST_DTYPE])
    report["steps"] = steps_section(report["cpu"])
    print("previews (fast CPU setting, base ddim10 + upsampler 3 steps):", flush=True)
    report["previews"] = preview_overhead(managers[FAST_DTYPE], "ddim10", "3",
                                          args.preview_runs)
    print_preview_overhead(report["previews"])
    del managers
    if not args.skip_levers:
        report["levers"] = {}
        for name in CASES:
            report["levers"][name] = levers.measure(name, args.lever_runs)
            levers.print_levers(name, report["levers"][name])
    if torch.cuda.is_available():
        from bench import gpu

        report["gpu"] = gpu.figures()
        gpu.print_figures(report["gpu"])
    else:
        print("no CUDA device: no GPU figures")
    info["load_average_end"] = os.getloadavg()
    info["bench_seconds"] = time.perf_counter() - start
    print(f"done in {info['bench_seconds']:.0f} s; load average at the end "
          f"{info['load_average_end'][0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
