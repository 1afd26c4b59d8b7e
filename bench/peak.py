"""The machine's fp32 peak, to say how much of it a forward uses.

    python -m bench.peak

peak = cores x fp32 FLOPs per cycle per core x clock, each from the machine:
  cores   physical cores (psutil), or torch's threads when fewer are used;
  FLOPs   per cycle per core from the vector level torch reports
          (`torch.backends.cpu.get_cpu_capability()`): two FMA pipes x lanes x 2 (a
          multiply and an add): AVX2 8 lanes -> 32, AVX512 16 lanes -> 64 (server parts
          with two 512-bit FMA units; parts with one reach half);
  clock   the highest frequency cpufreq reports, else /proc/cpuinfo's "cpu MHz" (on a
          virtual machine the host's nominal clock: a core that boosts runs faster, so a
          fraction of this peak can pass 100 %).
Beside it, the rate of a large fp32 matrix product (MKL through torch.mm): what the
machine really reaches on the densest work there is.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import psutil
import torch

FLOPS_PER_CYCLE = {"AVX2": 32, "AVX512": 64}  # fp32, per core: 2 FMA pipes x lanes x 2


def clock_ghz() -> tuple[float, str]:
    """(GHz, where it was read)."""
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if cpufreq.exists():
        return int(cpufreq.read_text().strip()) / 1e6, "cpufreq cpuinfo_max_freq"
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000, "/proc/cpuinfo cpu MHz (nominal)"
    return float("nan"), "unknown"


def gemm_gflops(size: int = 2048, runs: int = 5) -> float:
    """Median GFLOP/s of an fp32 [size x size] @ [size x size] product, after a warm-up."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def peak() -> dict[str, Any]:
    isa = torch.backends.cpu.get_cpu_capability()
    cores = min(psutil.cpu_count(logical=False) or 1, torch.get_num_threads())
    per_cycle = FLOPS_PER_CYCLE.get(isa, 0)
    ghz, clock_from = clock_ghz()
    return {"isa": isa, "cores": cores, "flops_per_cycle_per_core": per_cycle,
            "clock_ghz": ghz, "clock_from": clock_from,
            "peak_gflops": cores * per_cycle * ghz,
            "gemm_gflops": gemm_gflops(),
            "how": "cores (physical, or torch threads if fewer) x FLOPs per cycle (2 FMA "
                   "pipes x fp32 lanes of the vector level x 2) x clock"}


def describe(figures: dict[str, Any]) -> str:
    return (f"fp32 peak {figures['peak_gflops']:.0f} GFLOP/s = {figures['cores']} cores x "
            f"{figures['flops_per_cycle_per_core']} FLOP/cycle ({figures['isa']}) x "
            f"{figures['clock_ghz']:.2f} GHz ({figures['clock_from']}); a 2048^2 fp32 GEMM "
            f"reaches {figures['gemm_gflops']:.0f} GFLOP/s")


if __name__ == "__main__":
    print(describe(peak()))
