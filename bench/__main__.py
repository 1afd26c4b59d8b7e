"""All the benchmarks in one command; prints each figure with its setting, writes JSON.

    python -m bench --json bench.json [--runs 5] [--lever-runs 3] [--skip-levers]

Full-size GLIDE models with random weights (no checkpoint needed). Sections:
  peak      the machine's fp32 peak (cores x FMA width x clock, bench.peak)
  cpu       seconds per denoising step through the app's own sampling path on this
            machine's default path (bf16 where the CPU has bf16 hardware, else fp32), and
            the reference's fp32 forward of the same batch (contiguous fp32, text encoded
            in every forward: the reference's arithmetic, tests/test_parity.py) in the same
            process on the same weights, interleaved; their ratio against the target of
            that CPU kind (0.35 with bf16 hardware, 0.8 without) and fractions of the peak
  levers    each speed lever on one forward (bench.levers)
  flops     per forward and per full text2im sample
  memory    bytes of base + upsampler in the default dtype against a 16 GB laptop's
            default budget
  steps     the default step counts and faster choices, with estimated times
  previews  what live previews add to a run (bench.pipeline)
  fast      a whole default sample against the Fast preset, base and upsampler
            (estimated from per-step times through the pipeline, bench.solvers)
  training  one fine-tuning step of the full-size base, LoRA and full: seconds per step
            and peak RSS, each in its own process (bench.training)
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

from bench import levers, peak, solvers, steps, training
from bench.forward import CASES, count_flops, make_inputs
from bench.pipeline import FullSizeRandomManager, preview_overhead, print_preview_overhead
from glide_ui import models
from glide_ui.compute import DTYPE_NAMES
from glide_ui.glide import nn as glide_nn
from glide_ui.glide.options import full_options
from glide_ui.pipelines.requests import Text2ImRequest, respacing_steps

TARGETS = {"bf16": 0.35, "fp32": 0.8}  # step / the reference's fp32 forward, by default dtype
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
            "isa": torch.backends.cpu.get_cpu_capability(),
            "prepacked": sorted(DTYPE_NAMES[d] for d in glide_nn.PREPACKED_DTYPES),
            "amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "memory_bytes": psutil.virtual_memory().total,
            "load_average_start": os.getloadavg()}


def setting(manager: FullSizeRandomManager) -> str:
    packing = (f"oneDNN-prepacked weights for inputs <= {glide_nn.PACK_MAX_PIXELS} px"
               if manager.path.prepacked else "no prepacking (this CPU's oneDNN cannot)")
    return (f"this machine's default ({manager.path.describe()}): fused GroupNorm+SiLU, "
            f"{packing}, SDPA attention, text encoded once per request, "
            f"{torch.get_num_threads()} threads (torch default)")


def cpu_section(runs: int, flops: dict[str, Any], machine_peak: dict[str, Any]
                ) -> tuple[dict[str, Any], FullSizeRandomManager]:
    """The default path's step through the app's pipeline against the reference's fp32
    forward of the same batch (text encoded in it), interleaved in this process."""
    fast = FullSizeRandomManager(device="cpu")
    dtype = DTYPE_NAMES[fast.dtype]
    target = TARGETS[dtype]
    per_stage, ratio, cpu_ratio, of_peak = {}, {}, {}, {}
    for name in ("base", "upsample"):
        reference = steps.reference_model(name)
        per_stage[name] = steps.compare(name, {dtype: fast}, runs, reference)
        del reference
        ours, ref = per_stage[name][dtype], per_stage[name]["reference"]
        ratio[name] = ours["wall_s"] / ref["wall_s"]
        cpu_ratio[name] = ours["cpu_s"] / ref["cpu_s"]
        of_peak[name] = {
            "reference": flops[f"{name}_forward_flop"] / ref["wall_s"] / 1e9
            / machine_peak["peak_gflops"],
            "ours": flops[f"{name}_unet_flop"] / ours["wall_s"] / 1e9
            / machine_peak["peak_gflops"]}
        shape = "1 image with CFG = 2 rows, 64 px" if name == "base" else "1 image, 256 px"
        print(f"{name} step ({shape}, median of {ours['steps']}): {dtype} "
              f"{ours['wall_s']:.3f} s (cpu {ours['cpu_s']:.3f} s); the reference's fp32 "
              f"forward {ref['wall_s']:.3f} s (cpu {ref['cpu_s']:.3f} s): "
              f"x{ratio[name]:.2f} (target <= {target}); of the fp32 peak: reference "
              f"{of_peak[name]['reference']:.0%}, ours {of_peak[name]['ours']:.0%} "
              f"(its own FLOPs)", flush=True)
    section = {
        "base_step_s": per_stage["base"][dtype]["wall_s"],
        "upsample_step_s": per_stage["upsample"][dtype]["wall_s"],
        "dtype": dtype, "compute_path": fast.path.describe(), "setting": setting(fast),
        "path": "pipelines.text2im.guided_base (batch 1, CFG = 2 rows, 64 px) and "
                "pipelines.common.upsample (batch 1, 256 px), steps interleaved with the "
                "reference's forwards",
        "runs": runs,
        "reference": {"base_forward_s": per_stage["base"]["reference"]["wall_s"],
                      "upsample_forward_s": per_stage["upsample"]["reference"]["wall_s"],
                      "setting": "fp32, contiguous, text encoded in every forward: the "
                                 "reference implementation's arithmetic and work "
                                 "(tests/test_parity.py), same weights, same process"},
        "ratio_to_reference": ratio, "cpu_time_ratio_to_reference": cpu_ratio,
        "fraction_of_fp32_peak": of_peak, "target_ratio": target,
        "meets_target": all(r <= target for r in ratio.values()),
        "detail": per_stage,
    }
    return section, fast


def flops_section() -> dict[str, Any]:
    per_forward, unet_only = {}, {}
    for name, (batch, size) in CASES.items():
        options = full_options(name)
        inputs = make_inputs(options, batch, size)
        per_forward[name] = count_flops(options, inputs)
        unet_only[name] = count_flops(options, inputs, text_once=True)
    base_steps = respacing_steps("base", Text2ImRequest.base_respacing)[1]
    up_steps = respacing_steps("upsample", Text2ImRequest.upsample_respacing)[1]
    sample = base_steps * unet_only["base"] + up_steps * unet_only["upsample"]
    print(f"FLOPs: base forward (batch 2) {per_forward['base'] / 1e9:.0f} GFLOP "
          f"({unet_only['base'] / 1e9:.0f} without the text transformer, which the app runs "
          f"once per request), upsampler forward (batch 1) "
          f"{per_forward['upsample'] / 1e9:.0f} GFLOP ({unet_only['upsample'] / 1e9:.0f}); "
          f"a text2im sample ({base_steps} + {up_steps} steps) {sample / 1e12:.1f} TFLOP",
          flush=True)
    return {"base_forward_flop": per_forward["base"],
            "upsample_forward_flop": per_forward["upsample"],
            "base_unet_flop": unet_only["base"], "upsample_unet_flop": unet_only["upsample"],
            "text2im_sample_flop": sample, "sample_steps": [base_steps, up_steps]}


def memory_section(manager: FullSizeRandomManager) -> dict[str, Any]:
    """Weights of base + upsampler as the manager holds them in this machine's default
    dtype (plus the prepacked copies made while sampling) against the default budget of a
    16 GB machine."""
    names = ("base", "upsample")
    dtype = DTYPE_NAMES[manager.dtype]
    weights = {name: models.model_bytes(manager.get(name)) for name in names}
    packed = {name: glide_nn.packed_bytes(manager.get(name)) for name in names}
    with mock.patch.dict(os.environ, {models.MEMORY_ENV: ""}), \
            mock.patch.object(psutil, "virtual_memory",
                              return_value=mock.Mock(total=LAPTOP_BYTES)):
        budget = models.default_budget(torch.device("cpu"))
    total = sum(weights.values()) + sum(packed.values())
    print(f"memory: base {weights['base'] / 1e9:.2f} GB + upsampler "
          f"{weights['upsample'] / 1e9:.2f} GB in {dtype}, + {sum(packed.values()) / 1e9:.2f} "
          f"GB prepacked copies = {total / 1e9:.2f} GB; default budget on a 16 GB machine "
          f"{budget / 1e9:.2f} GB: {'fits' if total <= budget else 'DOES NOT FIT'}",
          flush=True)
    return {"dtype": dtype, "weights_bytes": weights, "prepacked_bytes": packed,
            "total_bytes": total, "laptop_bytes": LAPTOP_BYTES,
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
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report: dict[str, Any] = {"machine": machine()}
    info = report["machine"]
    print(f"{info['cpu']}: {info['physical_cores']} cores, torch {info['torch']} with "
          f"{info['torch_threads']} threads, {info['isa']}, AMX-bf16 {info['amx_bf16']}, "
          f"prepacked kernels {info['prepacked']}; load average "
          f"{info['load_average_start'][0]:.1f}", flush=True)
    report["peak"] = peak.peak()
    print(peak.describe(report["peak"]), flush=True)
    report["flops"] = flops_section()
    report["cpu"], fast = cpu_section(args.runs, report["flops"], report["peak"])
    report["memory"] = memory_section(fast)
    report["steps"] = steps_section(report["cpu"])
    print("previews (default path, base ddim10 + upsampler 3 steps):", flush=True)
    report["previews"] = preview_overhead(fast, "ddim10", "3", args.preview_runs)
    print_preview_overhead(report["previews"])
    report["fast_preset"] = solvers.measure(args.runs, fast)
    solvers.print_report(report["fast_preset"])
    del fast
    if not args.skip_levers:
        report["levers"] = {}
        for name in CASES:
            report["levers"][name] = levers.measure(name, args.lever_runs)
            levers.print_levers(name, report["levers"][name])
    report["training"] = training.measure(args.train_steps)
    training.print_report(report["training"])
    if torch.cuda.is_available():
        from bench import gpu

        report["gpu"] = gpu.figures(gpu.cuda_target())
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
