"""GPU figures: per-forward fp16/bf16, eager and compiled with CUDA graphs, a full text2im
sample and an inpaint through the app, the peak memory of a batch of 8 and batched vs
per-image model calls, and a text2im request of 8 images batched vs per image (seconds,
peak memory, how far a batched image is from its seed alone); one JSON.

    python -m bench.gpu [--json gpu.json] [--runs 10]      # on CUDA, full-size models
    python -m bench.gpu --cpu-tiny [--json gpu.json]       # the same script on the CPU

`--cpu-tiny` runs every part of the script that is not CUDA itself on the CPU, with the
tiny models and the accelerator's arithmetic (contiguous models in fp16 / bf16, no CPU
fusion or prepacking, computed slowly by torch), `torch.compile` with its eager backend
(traced, not compiled: inductor and CUDA graphs are CUDA's part) and no peak memory
(CUDA's allocator counts it), so the suite proves the script before a GPU is lent. On
CUDA it is sized to take at most about 8 minutes (measured on the CPU path: its parts are
the same calls). Written to run unattended: a case that fails (e.g. torch.compile
unavailable) is reported as an error string in its place rather than ending the bench.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.forward import CASES, make_inputs
from bench.pipeline import FullSizeRandomManager
from glide_ui.compute import ComputePath
from glide_ui.glide import nn as glide_nn
from glide_ui.models import ModelManager
from glide_ui.pipelines.inpaint import inpaint
from glide_ui.pipelines.requests import InpaintRequest, Text2ImRequest
from glide_ui.pipelines.text2im import text2im

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
BATCH = 8  # images in the batched model call


@dataclass(frozen=True)
class Target:
    """Where the script runs: CUDA with full-size models, or the CPU with the tiny ones."""

    device: torch.device
    tiny: bool
    runs: int
    sample_runs: int
    respacing: tuple[str, str] = ("100", "fast27")  # base, upsampler: the app's defaults
    batch: int = BATCH  # images in the batched figures

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_bytes(self) -> int | None:
        return torch.cuda.max_memory_allocated() if self.cuda else None

    def compile(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.cuda:
            return torch.compile(model, mode="reduce-overhead")
        return torch.compile(model, backend="eager")

    def manager(self, dtype: str, compiled: bool = False) -> ModelManager:
        return AcceleratorModels(self, DTYPES[dtype], compiled)


def cuda_target(runs: int = 10, sample_runs: int = 1) -> Target:
    return Target(torch.device("cuda"), tiny=False, runs=runs, sample_runs=sample_runs)


def cpu_tiny_target() -> Target:
    """The CPU run: fewer sampling steps (the same calls; fp16 convolutions are slow on
    the CPU)."""
    return Target(torch.device("cpu"), tiny=True, runs=1, sample_runs=1, respacing=("4", "2"),
                  batch=2)


class AcceleratorModels(FullSizeRandomManager):
    """Random models (full size, or the tiny set) on the path an accelerator gets: on CUDA
    the manager's own choice; on the CPU the same path (contiguous, the half dtype),
    which the manager itself never picks there."""

    def __init__(self, target: Target, dtype: torch.dtype, compiled: bool) -> None:
        super().__init__(device=target.device.type, max_memory="1000GB",
                         dtype=dtype if target.cuda else torch.float32)
        if not target.cuda:  # batched as on CUDA
            self.path = ComputePath(target.device, dtype, batch_images=True)
            self.dtype = dtype
        self.target, self.compiled = target, compiled

    def options(self, name: str) -> dict[str, Any]:
        if self.target.tiny:
            return ModelManager.options(self, name)  # the tiny set's own
        return super().options(name)

    def _load(self, name: str) -> torch.nn.Module:
        model = super()._load(name)
        return self.target.compile(model) if self.compiled else model


def _median_s(target: Target, fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        target.sync()
        start = time.perf_counter()
        fn()
        target.sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _calls_s(target: Target, model: torch.nn.Module, inputs: dict[str, Any],
             calls: int = 1) -> float:
    """Median seconds of `calls` model calls on `inputs`."""
    return _median_s(target, lambda: [model(**inputs) for _ in range(calls)], target.runs)


def _inputs(target: Target, model: torch.nn.Module, name: str, images: int) -> dict[str, Any]:
    """A model call for `images` images (base: 2 rows each, classifier-free guidance)."""
    rows = images * CASES[name][0]
    size = model.options["image_size"]
    inputs = {k: v.to(target.device) for k, v in make_inputs(model.options, rows, size).items()}
    inputs["text"] = model.encode_text(inputs.pop("tokens"), inputs.pop("mask"))
    return inputs


def forward_figures(target: Target, name: str) -> dict[str, Any]:
    """Seconds per forward of one image (base 2 rows, upsampler 1), per dtype, eager and
    compiled."""
    result: dict[str, Any] = {}
    for label in DTYPES:
        model = target.manager(label).get(name)
        with torch.inference_mode():
            inputs = _inputs(target, model, name, 1)
            model(**inputs)
            result[f"{label} eager"] = _calls_s(target, model, inputs)
        result[f"{label} compiled"] = _guard(lambda m=model, i=inputs: _compiled(target, m, i))
        target.reset_peak()
    return result


def _compiled(target: Target, model: torch.nn.Module, inputs: dict[str, Any]) -> dict:
    compiled = target.compile(model)
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(3):  # compile, then record the graph
            compiled(**inputs)
        target.sync()
        setup = time.perf_counter() - start
        return {"compile_s": setup, "forward_s": _calls_s(target, compiled, inputs)}


def sample_seconds(target: Target, manager: ModelManager, pipeline: str) -> dict[str, Any]:
    """A full sample of one image through the app's pipeline ("text2im": base with
    guidance + upsampler; "inpaint": the same on the inpainting pair) with the target's
    step counts (on CUDA the defaults), after a warm-up sample: median seconds and peak
    memory."""
    def sample() -> None:
        for _ in _events(target, pipeline, manager):
            pass

    if target.cuda:
        sample()  # warm-up: kernel choice, graph capture
    target.reset_peak()
    seconds = _median_s(target, sample, target.sample_runs)
    base, upsampler = target.respacing
    return {"seconds": seconds, "peak_bytes": target.peak_bytes(),
            "steps": f"base {base} (ancestral, CFG) + upsampler {upsampler}"}


def _events(target: Target, pipeline: str, manager: ModelManager) -> Any:
    base, upsampler = target.respacing
    steps = {"seed": 0, "preview_interval": 3600.0, "base_respacing": base,
             "upsample_respacing": upsampler}
    if pipeline == "text2im":
        return text2im(Text2ImRequest(prompt="a corgi in a field of flowers", **steps),
                       manager)
    picture = Image.fromarray(np.full((256, 256, 3), 120, dtype=np.uint8))
    mask = np.zeros((256, 256), dtype=bool)
    mask[64:192, 64:192] = True
    return inpaint(InpaintRequest(image=picture, mask=mask, prompt="a red ball", **steps),
                   manager)


def batch_figures(target: Target, name: str, dtype: str = "fp16") -> dict[str, Any]:
    """One model call for the target's batch of images against one call per image: seconds
    and peak memory of each (2 images on the CPU, where fp16 is emulated on most kinds)."""
    model = target.manager(dtype).get(name)
    result: dict[str, Any] = {"images": target.batch}
    with torch.inference_mode():
        for label, images, calls in (("batched", target.batch, 1),
                                     ("per_image", 1, target.batch)):
            inputs = _inputs(target, model, name, images)
            model(**inputs)
            target.reset_peak()
            seconds = _calls_s(target, model, inputs, calls)
            result[label] = {"seconds": seconds, "peak_bytes": target.peak_bytes()}
    target.reset_peak()
    return result


def batched_request_figures(target: Target) -> dict[str, Any]:
    """A text2im request of the target's batch of images (its steps) in one model call per
    step, against one call per image (`batch_images=False`, bit-identical to each seed
    alone): seconds and peak memory of each, and how far the batched images are from the
    per-image ones in 8-bit levels (largest, mean, share of values off by more than 4).
    fp16 on CUDA; bf16 on the CPU (its fp16 takes 90 s a sample there)."""
    dtype, images = ("fp16" if target.cuda else "bf16"), target.batch
    manager = target.manager(dtype)
    for name in ("base", "upsample"):
        manager.get(name)  # loaded before either run is timed
    base, upsampler = target.respacing
    request = Text2ImRequest(prompt="a corgi in a field of flowers", seed=0, batch_size=images,
                             preview_interval=3600.0, base_respacing=base,
                             upsample_respacing=upsampler)
    result: dict[str, Any] = {"images": images, "dtype": dtype}
    pictures = {}
    runs = (("warm-up", True), ("batched", True), ("per_image", False))
    for label, batch_images in runs[0 if target.cuda else 1:]:
        target.reset_peak()
        target.sync()
        start = time.perf_counter()
        events = list(text2im(replace(request, batch_images=batch_images), manager))
        target.sync()
        result[label] = {"seconds": time.perf_counter() - start,
                         "peak_bytes": target.peak_bytes()}
        pictures[label] = np.stack([np.asarray(image, dtype=np.int16)
                                    for image in events[-1].images])
    result.pop("warm-up", None)
    difference = np.abs(pictures["batched"] - pictures["per_image"])
    result["max_level_difference"] = int(difference.max())
    result["mean_level_difference"] = float(difference.mean())
    result["share_off_by_more_than_4"] = float((difference > 4).mean())
    return result


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as error:  # noqa: BLE001 - reported, not fatal
        return f"error: {type(error).__name__}: {error}"


def figures(target: Target) -> dict[str, Any]:
    """Everything above, for the JSON report."""
    if target.cuda:
        props = torch.cuda.get_device_properties(target.device)
        result: dict[str, Any] = {"device": props.name, "memory_bytes": props.total_memory}
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        result = {"device": "cpu (tiny models, the accelerator's arithmetic)",
                  "memory_bytes": None}
    result["torch"] = torch.__version__
    start = time.perf_counter()
    saved = glide_nn.FUSED_NORMS, glide_nn.PREPACKING
    if not target.cuda:  # CUDA's arithmetic: no CPU fusion, no oneDNN packing
        glide_nn.FUSED_NORMS = glide_nn.PREPACKING = False
    try:
        for name in CASES:
            result[f"{name}_forward_s"] = _guard(lambda n=name: forward_figures(target, n))
        for label in DTYPES:
            result[f"text2im_{label}_eager"] = _guard(
                lambda d=label: sample_seconds(target, target.manager(d), "text2im"))
        result["text2im_fp16_compiled"] = _guard(
            lambda: sample_seconds(target, target.manager("fp16", compiled=True), "text2im"))
        result["inpaint_fp16_eager"] = _guard(
            lambda: sample_seconds(target, target.manager("fp16"), "inpaint"))
        result["batch_fp16"] = {
            name: _guard(lambda n=name: batch_figures(target, n)) for name in CASES}
        result["text2im_batch"] = _guard(lambda: batched_request_figures(target))
    finally:
        glide_nn.FUSED_NORMS, glide_nn.PREPACKING = saved
    result["bench_seconds"] = time.perf_counter() - start
    return result


def print_figures(result: dict[str, Any]) -> None:
    memory = result["memory_bytes"]
    print(f"\nGPU: {result['device']}" + (f" ({memory / 2**30:.0f} GiB)" if memory else ""))
    for key, value in result.items():
        if key not in ("device", "memory_bytes", "torch"):
            print(f"  {key}: {value}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed forwards per figure")
    parser.add_argument("--cpu-tiny", action="store_true",
                        help="run the script on the CPU with the tiny models")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.cpu_tiny:
        target = cpu_tiny_target()
    elif torch.cuda.is_available():
        target = cuda_target(args.runs)
    else:
        print("CUDA is not available: no GPU figures (--cpu-tiny runs the script here).")
        return
    result = figures(target)
    print_figures(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
