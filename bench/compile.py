"""Does `torch.compile` pay off within one sample on the CPU? Compile time vs. time saved.

    python -m bench.compile [--case base] [--runs 3]

Compiles the UNet forward in this machine's default dtype (`--dtype` to choose: bf16 where
the CPU has bf16 hardware, else fp32; inductor with freezing, which prepacks the weights itself,
so our own prepacking is switched off inside the compiled graph) on full-size random
weights and compares it with the eager fast path. Reports the first call (compile + run),
the compiled and eager seconds per forward, and how many denoising steps it takes for the
saving to repay the compile time, against the steps of one default sample. Needs a C++
compiler on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch._inductor.config

from bench.forward import CASES, make_inputs
from glide_ui.compute import DTYPE_NAMES, choose_path
from glide_ui.glide import nn as glide_nn
from glide_ui.glide.options import full_options
from glide_ui.glide.unet import create_model
from glide_ui.pipelines.requests import Text2ImRequest, respacing_steps

SAMPLE_STEPS = {"base": respacing_steps("base", Text2ImRequest.base_respacing)[1],
                "upsample": respacing_steps("upsample", Text2ImRequest.upsample_respacing)[1]}


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(name: str, runs: int, dtype: torch.dtype | None = None) -> dict[str, Any]:
    batch, size = CASES[name]
    options = full_options(name)
    torch.manual_seed(0)
    model = create_model(options).eval().requires_grad_(False)
    dtype = dtype or choose_path("cpu").dtype
    model = model.to(dtype, memory_format=torch.channels_last)
    inputs = make_inputs(options, batch, size)
    with torch.inference_mode():
        inputs["text"] = model.encode_text(inputs.pop("tokens"), inputs.pop("mask"))
        inputs["x"] = inputs["x"].contiguous(memory_format=torch.channels_last)
        torch._inductor.config.freezing = True
        compiled = torch.compile(model)

        def compiled_call() -> None:
            saved, glide_nn.PREPACKING = glide_nn.PREPACKING, False
            try:
                compiled(**inputs)
            finally:
                glide_nn.PREPACKING = saved

        first = _timed(compiled_call)
        eager, fast = [], []
        for _ in range(runs):
            eager.append(_timed(lambda: model(**inputs)))
            fast.append(_timed(compiled_call))
    eager_s, compiled_s = statistics.median(eager), statistics.median(fast)
    saving = eager_s - compiled_s
    compile_s = first - compiled_s
    return {"case": name, "dtype": DTYPE_NAMES[dtype], "first_call_s": first,
            "compile_s": compile_s, "eager_s": eager_s, "compiled_s": compiled_s,
            "steps_to_repay": compile_s / saving if saving > 0 else None,
            "steps_per_sample": SAMPLE_STEPS[name]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dtype", choices=["fp32", "bf16"])
    args = parser.parse_args()
    for name in args.case or ["base"]:
        row = measure(name, args.runs, args.dtype and choose_path("cpu", args.dtype).dtype)
        repay = row["steps_to_repay"]
        print(f"{name} ({row['dtype']}): compile {row['compile_s']:.0f} s; "
              f"eager {row['eager_s']:.3f} s, "
              f"compiled {row['compiled_s']:.3f} s per forward; repaid after "
              f"{'never' if repay is None else f'{repay:.0f} steps'} "
              f"(a default sample has {row['steps_per_sample']})", flush=True)


if __name__ == "__main__":
    main()
