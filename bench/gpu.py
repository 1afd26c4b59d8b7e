"""GPU figures (only where CUDA is present): per-forward fp16/bf16, eager and compiled
with CUDA graphs, a full text2im sample through the app, and the memory batches take.

    python -m bench.gpu [--runs 20]

Written to run unattended: a case that fails (e.g. torch.compile unavailable) is
reported as an error string in its place rather than ending the bench.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.forward import CASES, make_inputs
from bench.pipeline import FullSizeRandomManager
from glide_ui.glide.options import full_options
from glide_ui.glide.unet import create_model
from glide_ui.pipelines.requests import Text2ImRequest
from glide_ui.pipelines.text2im import text2im

CONSUMER_BYTES = 24 * 2**30  # a 24 GB consumer card
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _median_s(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _model(name: str, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(full_options(name)).eval().requires_grad_(False).to("cuda", dtype)


def _inputs(model: torch.nn.Module, name: str, batch: int) -> dict[str, Any]:
    inputs = {k: v.cuda() for k, v in make_inputs(model.options, batch, CASES[name][1]).items()}
    inputs["text"] = model.encode_text(inputs.pop("tokens"), inputs.pop("mask"))
    return inputs


def forward_figures(name: str, runs: int) -> dict[str, Any]:
    """Seconds per forward (base batch 2, upsampler batch 1): eager and compiled."""
    result: dict[str, Any] = {}
    for label, dtype in DTYPES.items():
        result.update(_dtype_forward_figures(name, label, dtype, runs))
        torch.cuda.empty_cache()
    return result


def _dtype_forward_figures(name: str, label: str, dtype: torch.dtype,
                           runs: int) -> dict[str, Any]:
    model = _model(name, dtype)
    with torch.inference_mode():
        inputs = _inputs(model, name, CASES[name][0])
        model(**inputs)
        eager = _median_s(lambda: model(**inputs), runs)
    return {f"{label} eager": eager,
            f"{label} compiled (reduce-overhead: CUDA graphs)": _compiled(model, inputs, runs)}


def _compiled(model: torch.nn.Module, inputs: dict[str, Any], runs: int) -> Any:
    try:
        compiled = torch.compile(model, mode="reduce-overhead")
        with torch.inference_mode():
            start = time.perf_counter()
            for _ in range(3):  # compile, then record the graph
                compiled(**inputs)
            torch.cuda.synchronize()
            setup = time.perf_counter() - start
            return {"compile_s": setup, "forward_s": _median_s(lambda: compiled(**inputs), runs)}
    except Exception as error:  # noqa: BLE001 - reported, not fatal
        return f"error: {type(error).__name__}: {error}"


class CompiledManager(FullSizeRandomManager):
    """Full-size random models, each wrapped in torch.compile(mode="reduce-overhead")."""

    def _load(self, name: str) -> torch.nn.Module:
        return torch.compile(super()._load(name), mode="reduce-overhead")


def text2im_seconds(manager: FullSizeRandomManager, runs: int) -> dict[str, Any]:
    """A full text2im sample (base 100 steps with CFG, upsampler fast27, batch 1) through
    the app's pipeline, after a warm-up sample; median seconds and peak GPU memory."""
    request = Text2ImRequest(prompt="a corgi in a field of flowers", seed=0,
                             preview_interval=3600.0)

    def sample() -> None:
        for _ in text2im(request, manager):
            pass

    sample()
    torch.cuda.reset_peak_memory_stats()
    seconds = _median_s(sample, runs)
    return {"seconds": seconds, "peak_bytes": torch.cuda.max_memory_allocated(),
            "steps": "base 100 (ancestral, CFG) + upsampler fast27 (ddim)"}


def largest_batch(name: str, dtype: torch.dtype, limit: int = CONSUMER_BYTES) -> dict:
    """The largest batch of images whose batched forward (2 rows per image for the base
    model's CFG) peaks within `limit` bytes, doubling until it does not."""
    model = _model(name, dtype)
    rows_per_image = 2 if name == "base" else 1
    fits, peak_at_fit, images = 0, 0, 1
    while images <= 1024:
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            with torch.inference_mode():
                model(**_inputs(model, name, images * rows_per_image))
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        except torch.cuda.OutOfMemoryError:
            break
        if peak > limit:
            break
        fits, peak_at_fit, images = images, peak, images * 2
    del model
    torch.cuda.empty_cache()
    return {"images": fits, "peak_bytes": peak_at_fit, "limit_bytes": limit,
            "note": "batched forward, doubling; the app itself calls the model one image "
                    "at a time, so its memory does not grow with the batch"}


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as error:  # noqa: BLE001 - reported, not fatal
        return f"error: {type(error).__name__}: {error}"


def figures(runs: int = 20, sample_runs: int = 3) -> dict[str, Any]:
    """Everything above, for the JSON report."""
    props = torch.cuda.get_device_properties(0)
    result: dict[str, Any] = {"device": props.name, "memory_bytes": props.total_memory,
                              "torch": torch.__version__}
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    for name in CASES:
        result[f"{name}_forward_s"] = _guard(lambda name=name: forward_figures(name, runs))
    for label in DTYPES:
        eager = FullSizeRandomManager(device="cuda", dtype=label)
        result[f"text2im_{label}_eager"] = _guard(lambda m=eager: text2im_seconds(m, sample_runs))
        del eager
        torch.cuda.empty_cache()
        graphs = CompiledManager(device="cuda", dtype=label)
        result[f"text2im_{label}_cuda_graphs"] = _guard(
            lambda m=graphs: text2im_seconds(m, sample_runs))
        del graphs
        torch.cuda.empty_cache()
    result["largest_batch_24gb_fp16"] = {
        name: _guard(lambda name=name: largest_batch(name, torch.float16)) for name in CASES}
    return result


def print_figures(result: dict[str, Any]) -> None:
    print(f"\nGPU: {result['device']} ({result['memory_bytes'] / 2**30:.0f} GiB)")
    for key, value in result.items():
        if key not in ("device", "memory_bytes", "torch"):
            print(f"  {key}: {value}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("CUDA is not available: no GPU figures.")
        return
    print_figures(figures(args.runs))


if __name__ == "__main__":
    main()
