"""Each CPU speed lever measured on one UNet forward (full size, random weights).

    python -m bench.levers [--runs 3] [--case base] [--case upsample]

Variants are timed in turn within every round (so load drift hits all alike); the first
round warms up and is left out. fp32 contiguous (SDPA, all threads) is the reference's
arithmetic (tests/test_parity.py); every ratio is to it. The levers are those of this
machine's default dtype (bf16 where the CPU has bf16 hardware, else fp32).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.forward import CASES, count_flops, make_inputs
from glide_ui import heap
from glide_ui.compute import DTYPE_NAMES, choose_path
from glide_ui.glide import nn as glide_nn
from glide_ui.glide.options import full_options
from glide_ui.glide.unet import Text2ImUNet, create_model

CL = torch.channels_last
PLAIN = torch.contiguous_format


@dataclass(frozen=True)
class Variant:
    label: str
    dtype: torch.dtype
    memory_format: torch.memory_format = CL
    fused_norms: bool = True
    prepack: bool = True
    prepack_all: bool = False  # prepack every convolution, whatever its input size
    math_attention: bool = False
    threads: int | None = None  # None: the process default

    @property
    def key(self) -> tuple[torch.dtype, torch.memory_format]:
        return self.dtype, self.memory_format


FP32 = Variant("fp32 contiguous (baseline: the reference's arithmetic)", torch.float32, PLAIN)


def variants(dtype: torch.dtype | None = None) -> list[Variant]:
    """The levers of `dtype` (default: this machine's default dtype), the fast setting
    (all levers on) last but four, and the other CPU dtype's fast setting for comparison."""
    dtype = dtype or choose_path("cpu").dtype
    name = DTYPE_NAMES[dtype]
    other = torch.float32 if dtype == torch.bfloat16 else torch.bfloat16
    fast = Variant(f"{name} channels_last fused-norms prepacked (fast)", dtype)
    return [
        FP32,
        Variant(f"{name} channels_last only", dtype, fused_norms=False, prepack=False),
        Variant(f"{name} channels_last fused-norms", dtype, prepack=False),
        Variant(f"{name} channels_last prepacked", dtype, fused_norms=False),
        Variant(f"{name} contiguous fused-norms prepacked", dtype, PLAIN),
        fast,
        Variant("fast, prepack all sizes", dtype, prepack_all=True),
        Variant("fast, math attention (no SDPA kernel)", dtype, math_attention=True),
        Variant("fast, 1 thread", dtype, threads=1),
        Variant(f"{DTYPE_NAMES[other]} channels_last fused-norms prepacked", other),
    ]


@contextmanager
def _switches(variant: Variant) -> Iterator[None]:
    saved = (glide_nn.FUSED_NORMS, glide_nn.PREPACKING, glide_nn.PACK_MAX_PIXELS,
             torch.get_num_threads())
    glide_nn.FUSED_NORMS = variant.fused_norms
    glide_nn.PREPACKING = variant.prepack and saved[1]
    if variant.prepack_all:
        glide_nn.PACK_MAX_PIXELS = 2**62
    if variant.threads:
        torch.set_num_threads(variant.threads)
    try:
        with ExitStack() as stack:
            if variant.math_attention:
                stack.enter_context(sdpa_kernel(SDPBackend.MATH))
            yield
    finally:
        glide_nn.FUSED_NORMS, glide_nn.PREPACKING, glide_nn.PACK_MAX_PIXELS = saved[:3]
        torch.set_num_threads(saved[3])


def _models(options: dict, variants: list[Variant]) -> dict[tuple, Text2ImUNet]:
    """One copy of the same random weights per (dtype, memory format) the variants use."""
    torch.manual_seed(0)
    source = create_model(options).eval().requires_grad_(False)
    models = {}
    for dtype, fmt in dict.fromkeys(v.key for v in variants):
        model = create_model(options).eval().requires_grad_(False)
        model.load_state_dict(source.state_dict())
        models[dtype, fmt] = model.to(dtype=dtype, memory_format=fmt)
    return models


def _forward(model: Text2ImUNet, inputs: dict[str, Any], fmt: torch.memory_format
             ) -> Callable[[], torch.Tensor]:
    x = {k: v.contiguous(memory_format=fmt) if torch.is_tensor(v) and v.dim() == 4 else v
         for k, v in inputs.items()}
    return lambda: model(**x)


def measure(name: str, runs: int, chosen: list[Variant] | None = None) -> dict[str, Any]:
    """Median wall / process-CPU seconds per forward of each variant, and their agreement
    with fp32 (max |difference| over max |fp32 output|)."""
    heap.keep_heap()  # as the app's CPU manager does (glide_ui.heap)
    chosen = chosen or variants()
    fast = next(v for v in chosen if v.label.endswith("(fast)"))
    batch, size = CASES[name]
    options = full_options(name)
    inputs = make_inputs(options, batch, size)
    flops = count_flops(options, inputs)
    models = _models(options, chosen)
    with torch.inference_mode():
        text = models[FP32.key].encode_text(inputs.pop("tokens"), inputs.pop("mask"))
        inputs["text"] = text
        calls = {v.label: _forward(models[v.key], inputs, v.memory_format) for v in chosen}
        wall: dict[str, list[float]] = {v.label: [] for v in chosen}
        cpu: dict[str, list[float]] = {v.label: [] for v in chosen}
        outputs = {}
        for round_ in range(runs + 1):
            for variant in chosen:
                with _switches(variant):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    out = calls[variant.label]()
                    if round_:
                        wall[variant.label].append(time.perf_counter() - start)
                        cpu[variant.label].append(time.process_time() - start_cpu)
                outputs.setdefault(variant.label, out)
        text_s = _encode_seconds(models[fast.key], options)
    base = statistics.median(wall[FP32.label])
    reference = outputs[FP32.label]
    rows = []
    for variant in chosen:
        median = statistics.median(wall[variant.label])
        error = (outputs[variant.label] - reference).abs().max() / reference.abs().max()
        rows.append({"setting": variant.label, "wall_s": median,
                     "cpu_s": statistics.median(cpu[variant.label]),
                     "ratio_to_fp32": median / base, "max_err_rel": error.item(),
                     "gflop_per_s": flops / median / 1e9})
    return {"batch": batch, "size": size, "gflop_per_forward": flops / 1e9, "runs": runs,
            "variants": rows, "text_encoder_s": text_s,
            "text_encoder_note": "encode_text runs once per request; per step it would add "
                                 "this much to every step of the fast setting"}


def _encode_seconds(model: Text2ImUNet, options: dict) -> float:
    """Median seconds of the text transformer on 2 rows (a prompt and the empty prompt)."""
    inputs = make_inputs(options, 2, 64)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.encode_text(inputs["tokens"], inputs["mask"])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_levers(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name} forward (batch {result['batch']}, {result['size']} px, "
          f"{result['gflop_per_forward']:.0f} GFLOP), median of {result['runs']}:")
    for row in result["variants"]:
        print(f"  {row['setting']:46s} {row['wall_s']:7.3f} s  cpu {row['cpu_s']:7.3f} s  "
              f"x{row['ratio_to_fp32']:.2f} of fp32  err {row['max_err_rel']:.4f}  "
              f"{row['gflop_per_s']:6.0f} GFLOP/s", flush=True)
    print(f"  text transformer (2 rows, fast setting): {result['text_encoder_s']:.3f} s per "
          "request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in args.case or CASES:
        print_levers(name, measure(name, args.runs))


if __name__ == "__main__":
    main()
