"""How much memory does a loaded model really take? `python -m bench.rss`

For each of the four GLIDE UNets at full size (the tiny set's seeded random weights at
the official sizes, through the ModelManager) and each CPU path this machine has (fp32
and bf16 with oneDNN-prepacked weights where its oneDNN runs them, and fp32 plain, as a
CPU without oneDNN runs it), a fresh subprocess loads the model and runs one forward of
one image (the base models: 2 rows, as classifier-free guidance runs them, at 64 px; the
upsamplers: 1 row at 256 px). Printed per run:

  peak    the process's peak RSS (ru_maxrss) minus its RSS before the load, over the
          model's weight bytes in that dtype, at the end of the first forward: targets
          1.15 (64 px) and 1.5 (256 px, whose activations are about 0.3 x the weights);
          beside it the same after a second forward (the steady state of a request: the
          heap keeps the activations' memory between steps, glide_ui.heap)
  after   RSS growth once the request is over (the manager hands the heap back), against
          the bytes the manager counts for the model (`ManagerStatus.used_bytes`)
  load    seconds of `ModelManager.get` (wall; the machine's load average beside it)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
MODELS = ("base", "upsample", "base-inpaint", "upsample-inpaint")
TARGETS = {64: 1.15, 256: 1.5}  # peak RSS growth / weight bytes, by image size
ROWS = {64: 2, 256: 1}  # rows of one image's model call, by image size


def paths() -> list[str]:
    """This machine's CPU paths: "fp32", "bf16" (where oneDNN runs it prepacked), "plain"."""
    from glide_ui.glide.nn import PREPACKED_DTYPES

    found = [label for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
             if dtype in PREPACKED_DTYPES]
    return [*found, "plain"]


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    """Peak resident set size of this process in bytes (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def one_image_inputs(options: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A model call for one image of `options`' model (2 rows at 64 px, 1 at 256 px)."""
    from bench.forward import make_inputs

    size = options["image_size"]
    inputs = make_inputs(options, ROWS[size], size)
    if options["inpaint"]:
        x = inputs["x"]
        inputs["inpaint_image"] = torch.rand_like(x) * 2 - 1
        inputs["inpaint_mask"] = (torch.arange(size) < size // 2).float().expand(
            len(x), 1, size, size).contiguous()
    return inputs


class _Manager:
    """Full-size random models, or narrower ones (`channels` for the UNet's base width)."""

    def __new__(cls, channels: int | None, **kwargs: Any) -> Any:
        from bench.pipeline import FullSizeRandomManager

        class Narrow(FullSizeRandomManager):
            def options(self, name: str) -> dict[str, Any]:
                options = super().options(name)
                return {**options, "num_channels": channels} if channels else options

        return Narrow(**kwargs)


def _warm_up(name: str, dtype: str) -> None:
    """Run the tiny model once on this path: what a process pays once (oneDNN's kernels,
    MKL's and OpenMP's buffers) is paid before the baseline."""
    from glide_ui import heap
    from glide_ui.glide.options import tiny_options
    from glide_ui.models import ModelManager

    tiny = ModelManager("tiny", device="cpu", dtype=dtype)
    with tiny.use(name) as (model,), torch.inference_mode():
        model(**one_image_inputs(tiny_options(name)))
    tiny.release(name)
    heap.release_heap()


def _child(name: str, path: str, channels: int | None = None,
           warm: bool = False) -> dict[str, Any]:
    from glide_ui import compute
    from glide_ui.glide import nn as glide_nn

    if path == "plain":
        glide_nn.PREPACKING = False
        compute.PREPACKED_DTYPES = frozenset()
    dtype = "bf16" if path == "bf16" else "fp32"
    if warm:
        _warm_up(name, dtype)
    manager = _Manager(channels, device="cpu", dtype=dtype, max_memory="1000GB")
    inputs = one_image_inputs(manager.options(name))
    baseline = _rss()
    start = time.perf_counter()
    with manager.use(name) as (model,):
        load = time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode():
            out = model(**inputs)
        forward = time.perf_counter() - start
        assert torch.isfinite(out).all()
        peak = _peak_rss() - baseline
        with torch.inference_mode():
            model(**inputs)  # the steady state: a request's later steps
        steady = _peak_rss() - baseline
    del out
    from glide_ui.models import model_bytes

    return {"model": name, "path": path, "compute_path": manager.path.describe(),
            "weights_bytes": model_bytes(model), "baseline_rss": baseline,
            "peak_growth": peak, "steady_growth": steady, "after_growth": _rss() - baseline,
            "manager_bytes": manager.status().used_bytes, "load_s": load,
            "forward_s": forward, "load_average": os.getloadavg()[0]}


def run_child(name: str, path: str, channels: int | None = None,
              warm: bool = False) -> dict[str, Any]:
    """One model and path measured in a fresh process (so the peak is its own).

    channels: the UNet's base width (default: the official one); warm: run the tiny model
    first, so one-time costs of the process fall before the baseline."""
    extra = [*(["--channels", str(channels)] if channels else []), *(["--warm"] if warm else [])]
    output = subprocess.run(
        [sys.executable, "-m", "bench.rss", "--child", name, "--path", path, *extra],
        cwd=REPO, check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    result = json.loads(output.strip().splitlines()[-1])
    size = 256 if name.startswith("upsample") else 64
    result["ratio"] = result["peak_growth"] / result["weights_bytes"]
    result["steady_ratio"] = result["steady_growth"] / result["weights_bytes"]
    result["target"] = TARGETS[size]
    result["manager_vs_rss"] = result["manager_bytes"] / result["after_growth"]
    return result


def describe(result: dict[str, Any]) -> str:
    gib = 2**30
    verdict = "meets" if result["ratio"] <= result["target"] else "MISSES"
    return (f"{result['model']:16s} {result['path']:5s} weights "
            f"{result['weights_bytes'] / gib:.2f} GiB: peak RSS growth "
            f"{result['peak_growth'] / gib:.2f} GiB = x{result['ratio']:.2f} ({verdict} "
            f"<= {result['target']}); after a second forward x{result['steady_ratio']:.2f}; "
            f"after the request {result['after_growth'] / gib:.2f} "
            f"GiB, the manager counts {result['manager_bytes'] / gib:.2f} GiB "
            f"(x{result['manager_vs_rss']:.3f}); load {result['load_s']:.1f} s, forward "
            f"{result['forward_s']:.1f} s (load average {result['load_average']:.1f})")


def measure(models: list[str] | None = None, which: list[str] | None = None
            ) -> list[dict[str, Any]]:
    """Every model on every path (printed as it goes); the figures, for the JSON report."""
    results = []
    for path in which or paths():
        for name in models or MODELS:
            results.append(run_child(name, path))
            print(describe(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--channels", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="*", choices=MODELS)
    parser.add_argument("--paths", nargs="*", choices=["fp32", "bf16", "plain"])
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.path, args.channels, args.warm)))
        return
    results = measure(args.models, args.paths)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
