"""Forward-pass cost of the full-size GLIDE UNets, with random weights.

    python -m bench.forward [--runs N]

Prints the FLOPs of one forward and the median wall time per forward on CPU (fp32 and
bf16, each contiguous and channels_last) and, when CUDA is available, fp16/bf16 on GPU.
Cases: base (batch 2, 64 px, text tokens) and upsample (batch 1, 64 -> 256 px).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from glide_ui.glide.options import full_options
from glide_ui.glide.unet import Text2ImUNet, create_model

CASES = {"base": (2, 64), "upsample": (1, 256)}  # name -> (batch, image size)


def make_inputs(options: dict, batch: int, size: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ctx = options["text_ctx"]
    mask = torch.arange(ctx)[None].expand(batch, ctx) < 12
    inputs = {
        "x": torch.randn(batch, 3, size, size, generator=g),
        "timesteps": torch.full((batch,), 500),
        "tokens": torch.where(mask, torch.randint(0, 50256, (batch, ctx), generator=g), 50256),
        "mask": mask,
    }
    if options["super_res"]:
        inputs["low_res"] = torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1
    return inputs


def count_flops(options: dict, inputs: dict[str, torch.Tensor], text_once: bool = False) -> int:
    """FLOPs of one forward, counted on the meta device (attention counted as matmuls).

    text_once: leave out the text transformer (the app encodes the prompt once per request).
    """
    with torch.device("meta"):
        model = create_model(options)
        meta_inputs = {k: torch.empty_like(v, device="meta") for k, v in inputs.items()}
        if text_once:
            meta_inputs["text"] = model.encode_text(meta_inputs.pop("tokens"),
                                                    meta_inputs.pop("mask"))
        with FlopCounterMode(display=False) as counter:
            model(**meta_inputs)
    return counter.get_total_flops()


def median_ms(model: Text2ImUNet, inputs: dict[str, torch.Tensor],
              runs: int) -> tuple[float, float]:
    """Median (wall, process CPU) milliseconds per forward after one warm-up run.

    CPU time summed over threads tells how much work a forward took even when other
    processes share the cores and stretch the wall time.
    """
    sync = torch.cuda.synchronize if inputs["x"].is_cuda else (lambda: None)
    wall, cpu = [], []
    with torch.inference_mode():
        for i in range(runs + 1):  # the first run warms up (allocator, kernel choice)
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            out = model(**inputs)
            sync()
            if i:
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
    assert torch.isfinite(out).all()
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def _report(label: str, flops: int, times: tuple[float, float]) -> None:
    wall, cpu = times
    print(f"  {label:26s} {wall:9.1f} ms  (cpu time {cpu:9.1f} ms)  "
          f"{flops / wall / 1e6:8.1f} GFLOP/s", flush=True)


def _to(inputs: dict[str, torch.Tensor], device: str,
        memory_format: torch.memory_format) -> dict[str, torch.Tensor]:
    return {k: v.to(device).contiguous(memory_format=memory_format) if v.dim() == 4
            else v.to(device) for k, v in inputs.items()}


def cpu_variants(model: Text2ImUNet) -> Iterator[tuple[str, torch.memory_format]]:
    """Convert `model` in place through fp32 / bf16 x contiguous / channels_last."""
    for dtype in (torch.float32, torch.bfloat16):
        for fmt in (torch.contiguous_format, torch.channels_last):
            model.to(dtype=dtype, memory_format=fmt)
            label = f"cpu {str(dtype).removeprefix('torch.')}"
            yield label + (" channels_last" if fmt == torch.channels_last else ""), fmt


def run_case(name: str, runs: int) -> None:
    batch, size = CASES[name]
    options = full_options(name)
    inputs = make_inputs(options, batch, size)
    flops = count_flops(options, inputs)
    print(f"\n{name}: batch {batch}, {size} px, {flops / 1e9:.1f} GFLOP per forward", flush=True)
    torch.manual_seed(0)
    model = create_model(options).eval()
    for label, fmt in cpu_variants(model):
        _report(label, flops, median_ms(model, _to(inputs, "cpu", fmt), runs))
    if torch.cuda.is_available():
        for dtype in (torch.float16, torch.bfloat16):
            model.to(device="cuda", dtype=dtype, memory_format=torch.contiguous_format)
            times = median_ms(model, _to(inputs, "cuda", torch.contiguous_format), 10 * runs)
            _report(f"cuda {str(dtype).removeprefix('torch.')}", flops, times)
    else:
        print("  (CUDA not available)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant")
    parser.add_argument("--case", choices=sorted(CASES), action="append",
                        help="only these cases (default: all)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {_load()}")
    for name in args.case or CASES:
        run_case(name, args.runs)
    print(f"\nat the end: {_load()}")


def _load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
