"""How this machine runs GLIDE: device, dtype and CPU kernels, chosen by capability.

On the CPU the choice rests on what the processor can do, asked of torch and oneDNN (and
probed once, `glide.nn.PREPACKED_DTYPES`), never on which operators merely exist:

| CPU                             | default | path                                           |
|---------------------------------|---------|------------------------------------------------|
| AMX-bf16 or AVX512-BF16         | bf16    | channels_last, oneDNN-prepacked bf16 weights   |
| any other x86-64 (AVX2, AVX512) | fp32    | channels_last, oneDNN-prepacked fp32 weights   |
| no oneDNN (some ARM builds)     | fp32    | channels_last, torch's own kernels             |

`--dtype bf16` on a CPU without bf16 instructions runs, emulated and slower than fp32, and
says so (`ComputePath.notice`). On CUDA the default is fp16, and the images of a request
go through the model in one call per step (`ComputePath.batch_images`; a GPU is far from
full with one image's rows); on the CPU one image per call, bit-identical to the same seed
alone. A device that is not there is refused before anything loads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from glide_ui.errors import GlideUIError
from glide_ui.glide.nn import PREPACKED_DTYPES

log = logging.getLogger(__name__)

_DTYPES = {
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class CpuCapability:
    """What the CPU can do, as torch and oneDNN see it.

    isa: torch's vector level (`torch.backends.cpu.get_cpu_capability()`: "AVX2",
    "AVX512", ...); native_bf16: bf16 dot products in hardware (AMX-bf16 or AVX512-BF16);
    prepacked: dtypes whose oneDNN prepacked kernels run here.
    """

    isa: str
    native_bf16: bool
    prepacked: frozenset[torch.dtype]


# Extensions beyond torch's vector level that make oneDNN pick other kernels.
_KERNEL_FLAGS = ("amx_bf16", "amx_fp16", "avx512_bf16", "avx512_fp16", "avx_vnni")


def _cpuinfo_field(cpuinfo: str | None, field: str) -> str:
    """The first `field : value` of /proc/cpuinfo ("" where there is none to read)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
    return next((line.split(":", 1)[-1].strip() for line in cpuinfo.splitlines()
                 if line.split(":", 1)[0].strip() == field), "")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bf16 in hardware (AMX or AVX512-BF16), from /proc/cpuinfo
    (False where there is none to read). Elsewhere bf16 is emulated, slower than fp32."""
    flags = _cpuinfo_field(cpuinfo, "flags").split()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def cpu_kernel_kind(cpuinfo: str | None = None) -> str:
    """What decides the order fp32 kernels sum in here, e.g. "AVX512 GenuineIntel amx_bf16
    avx512_bf16 avx512_fp16": torch's vector level, the vendor (MKL and oneDNN dispatch on
    it) and the extensions that pick oneDNN's kernels. Two CPUs of one kind give the same
    bits; across kinds results differ in the last bits."""
    flags = set(_cpuinfo_field(cpuinfo, "flags").split())
    return " ".join([torch.backends.cpu.get_cpu_capability(),
                     _cpuinfo_field(cpuinfo, "vendor_id") or "unknown-vendor",
                     *(flag for flag in _KERNEL_FLAGS if flag in flags)])


@dataclass(frozen=True)
class CudaCapability:
    """What a CUDA device can do: its name and whether it computes bf16 (compute
    capability 8.0, Ampere, and later)."""

    name: str
    bf16: bool


def this_cuda(device: torch.device) -> CudaCapability:
    return CudaCapability(torch.cuda.get_device_name(device), torch.cuda.is_bf16_supported())


def this_cpu() -> CpuCapability:
    return CpuCapability(torch.backends.cpu.get_cpu_capability(), cpu_has_native_bf16(),
                         PREPACKED_DTYPES)


@dataclass(frozen=True)
class ComputePath:
    """The device, dtype and kernels models run with; `notice` says why it is slow, if so."""

    device: torch.device
    dtype: torch.dtype
    channels_last: bool = False
    prepacked: bool = False
    notice: str = ""
    batch_images: bool = False  # a request's images in one model call (else one by one)

    def describe(self) -> str:
        """E.g. "cpu, fp32, channels_last, oneDNN-prepacked weights"."""
        parts = [str(self.device), DTYPE_NAMES[self.dtype]]
        if self.channels_last:
            parts.append("channels_last")
        if self.prepacked:
            parts.append("oneDNN-prepacked weights")
        if self.batch_images:
            parts.append("images batched in one model call")
        return ", ".join(parts)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device asked for, else CUDA when present, else the CPU.

    Raises GlideUIError for a device this machine does not have (before any model loads).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise GlideUIError(f"Unknown device {device!r}: use cpu, cuda, cuda:N or mps.") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise GlideUIError(f"--device {device}: no CUDA GPU is usable here (torch "
                               f"{torch.__version__}); use --device cpu.")
        if (resolved.index or 0) >= count:
            raise GlideUIError(f"--device {device}: this machine has {count} CUDA GPU(s), "
                               f"cuda:0 to cuda:{count - 1}.")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise GlideUIError(f"--device {device}: Apple's MPS is not available here; use "
                           "--device cpu.")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise GlideUIError(f"Unsupported device {device!r}: use cpu, cuda, cuda:N or mps.")
    return resolved


def device_available(device: str) -> bool:
    """Whether this machine has `device` ("cpu", "cuda:1", "mps"...), as `resolve_device`
    judges it."""
    try:
        resolve_device(device)
    except GlideUIError:
        return False
    return True


def choose_path(device: str | torch.device | None = None,
                dtype: str | torch.dtype | None = None,
                cpu: CpuCapability | None = None,
                cuda: CudaCapability | None = None,
                batch: bool | None = None) -> ComputePath:
    """The path for `device` and `dtype` (None: this machine's defaults, see the module).

    cpu, cuda: the device's capability (default: this machine's; tests pass others).
    batch: a request's images in one model call per step (None: the device's default,
    CUDA yes, others no; True also on the CPU, e.g. to test that path there).
    Raises GlideUIError for a device that is not there or a dtype the device cannot run.
    """
    path = _device_path(device, dtype, cpu, cuda)
    return path if batch is None else replace(path, batch_images=batch)


def _device_path(device: str | torch.device | None, dtype: str | torch.dtype | None,
                 cpu: CpuCapability | None, cuda: CudaCapability | None) -> ComputePath:
    resolved = resolve_device(device) if cuda is None else torch.device(device or "cuda")
    if resolved.type == "cuda":
        return _cuda_path(resolved, dtype, cuda)
    if resolved.type != "cpu":
        return ComputePath(resolved, _parse_dtype(dtype) if dtype else torch.float32)
    cpu = cpu or this_cpu()
    chosen = _parse_dtype(dtype) if dtype is not None else _cpu_default(cpu)
    if chosen == torch.float16:
        raise GlideUIError("fp16 is for GPUs; on the CPU use fp32 or bf16.")
    notice = ""
    if chosen == torch.bfloat16 and not cpu.native_bf16:
        notice = (f"bf16 is emulated on this CPU ({cpu.isa}, no AMX or AVX512-BF16): it "
                  "runs, but slower than fp32, this CPU's fastest setting (--dtype fp32).")
    return ComputePath(resolved, chosen, channels_last=True,
                       prepacked=chosen in cpu.prepacked, notice=notice)


def _cpu_default(cpu: CpuCapability) -> torch.dtype:
    if cpu.native_bf16 and torch.bfloat16 in cpu.prepacked:
        return torch.bfloat16
    return torch.float32


def _cuda_path(device: torch.device, dtype: str | torch.dtype | None,
               gpu: CudaCapability | None) -> ComputePath:
    """fp16 by default; contiguous; a request's images batched into one model call (a
    GPU is far from full with one image's rows). gpu: asked of the device only for bf16."""
    chosen = _parse_dtype(dtype) if dtype is not None else torch.float16
    if chosen == torch.bfloat16 and gpu is None:
        gpu = this_cuda(device)
    if chosen == torch.bfloat16 and not gpu.bf16:
        raise GlideUIError(f"This GPU ({gpu.name}) has no bf16; use --dtype fp16 or fp32.")
    return ComputePath(device, chosen, batch_images=True)


def _parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    resolved = _DTYPES.get(dtype.lower()) if isinstance(dtype, str) else dtype
    if resolved not in DTYPE_NAMES:
        raise GlideUIError(f"Unsupported dtype {dtype!r}: use fp32, fp16 or bf16.")
    return resolved

