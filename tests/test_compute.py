"""Device, dtype and kernel path: chosen from what the machine can do, for every CPU kind.

The CPU kinds this project meets are described by their capability (what torch and oneDNN
report there), so each kind's choice is tested on any machine; this machine's own choice
is tested against its own capability.
"""

from __future__ import annotations

import pytest
import torch

from glide_ui import compute
from glide_ui.compute import ComputePath, CpuCapability, choose_path
from glide_ui.errors import GlideUIError
from glide_ui.glide.nn import PREPACKED_DTYPES

BOTH = frozenset({torch.float32, torch.bfloat16})
AMX = CpuCapability("AVX512", native_bf16=True, prepacked=BOTH)  # Xeon, Sapphire Rapids on
AVX512 = CpuCapability("AVX512", native_bf16=False, prepacked=BOTH)  # Skylake-X .. Ice Lake
AVX2 = CpuCapability("AVX2", native_bf16=False, prepacked=frozenset({torch.float32}))  # Zen 3
NO_ONEDNN = CpuCapability("DEFAULT", native_bf16=False, prepacked=frozenset())
KINDS = {"AMX": AMX, "AVX512": AVX512, "AVX2": AVX2, "no oneDNN": NO_ONEDNN}


@pytest.mark.parametrize(("kind", "default", "prepacked"), [
    ("AMX", torch.bfloat16, True), ("AVX512", torch.float32, True),
    ("AVX2", torch.float32, True), ("no oneDNN", torch.float32, False)])
def test_default_path_per_cpu_kind(kind: str, default: torch.dtype, prepacked: bool) -> None:
    path = choose_path("cpu", None, KINDS[kind])
    assert (path.dtype, path.prepacked, path.channels_last) == (default, prepacked, True), kind
    assert path.notice == "", kind


@pytest.mark.parametrize("kind", ["AVX512", "AVX2", "no oneDNN"])
def test_bf16_without_bf16_hardware_runs_and_says_it_is_emulated(kind: str) -> None:
    path = choose_path("cpu", "bf16", KINDS[kind])
    assert path.dtype == torch.bfloat16, kind
    assert path.prepacked == (torch.bfloat16 in KINDS[kind].prepacked), kind
    assert "emulated" in path.notice and "--dtype fp32" in path.notice, kind


def test_bf16_on_bf16_hardware_says_nothing() -> None:
    path = choose_path("cpu", "bf16", AMX)
    assert (path.dtype, path.prepacked, path.notice) == (torch.bfloat16, True, "")


@pytest.mark.parametrize("kind", list(KINDS))
def test_fp16_on_any_cpu_is_refused_in_one_line(kind: str) -> None:
    with pytest.raises(GlideUIError, match="fp16 is for GPUs") as error:
        choose_path("cpu", "fp16", KINDS[kind])
    assert "\n" not in str(error.value)


def test_unknown_dtype_is_refused() -> None:
    with pytest.raises(GlideUIError, match="int8"):
        choose_path("cpu", "int8", AVX2)


def test_this_machine_takes_the_path_its_capability_gives() -> None:
    cpu = compute.this_cpu()
    assert cpu.isa == torch.backends.cpu.get_cpu_capability()
    assert cpu.prepacked == PREPACKED_DTYPES
    path = choose_path("cpu")
    expected = (torch.bfloat16 if cpu.native_bf16 and torch.bfloat16 in cpu.prepacked
                else torch.float32)
    assert path.dtype == expected, f"{cpu}: {path.describe()}"
    assert path.prepacked == (expected in PREPACKED_DTYPES), f"{cpu}: {path.describe()}"


def test_native_bf16_is_read_from_the_cpu_flags() -> None:
    line = "flags\t\t: fpu sse2 avx2 avx512f {}\n"
    assert compute.cpu_has_native_bf16("model name : x\n" + line.format("amx_bf16 amx_tile"))
    assert compute.cpu_has_native_bf16(line.format("avx512_bf16"))
    assert not compute.cpu_has_native_bf16(line.format("avx512_vnni"))
    assert not compute.cpu_has_native_bf16("")


def test_the_kernel_kind_names_vector_level_vendor_and_extensions() -> None:
    intel = ("vendor_id\t: GenuineIntel\nflags\t\t: avx2 avx512f amx_tile amx_bf16 "
             "avx512_bf16 avx512_fp16\n")
    amd = "vendor_id\t: AuthenticAMD\nflags\t\t: avx2 avx512f avx512_bf16 avx512_vnni\n"
    isa = torch.backends.cpu.get_cpu_capability()
    assert compute.cpu_kernel_kind(intel) == f"{isa} GenuineIntel amx_bf16 avx512_bf16 avx512_fp16"
    assert compute.cpu_kernel_kind(amd) == f"{isa} AuthenticAMD avx512_bf16"
    assert compute.cpu_kernel_kind("") == f"{isa} unknown-vendor"


def test_default_device_is_cuda_only_where_it_is() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert compute.resolve_device(None).type == expected


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_refused_before_loading(device: str, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(GlideUIError, match="no CUDA GPU") as error:
        choose_path(device)
    assert "--device cpu" in str(error.value)


def test_mps_without_apple_silicon_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(GlideUIError, match="MPS is not available"):
        choose_path("mps")


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:x"])
def test_unknown_devices_are_refused(device: str) -> None:
    with pytest.raises(GlideUIError, match="device"):
        choose_path(device)


def test_describe_names_device_dtype_and_kernels() -> None:
    path = ComputePath(torch.device("cpu"), torch.float32, channels_last=True, prepacked=True)
    assert path.describe() == "cpu, fp32, channels_last, oneDNN-prepacked weights"


def test_a_gpu_index_beyond_the_machine_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert choose_path("cuda:1", "fp32").device == torch.device("cuda:1")
    with pytest.raises(GlideUIError, match="cuda:0 to cuda:1"):
        choose_path("cuda:2")


AMPERE = compute.CudaCapability("NVIDIA A10G", bf16=True)
TURING = compute.CudaCapability("Tesla T4", bf16=False)


def test_cuda_defaults_to_fp16_contiguous_with_a_requests_images_batched() -> None:
    for gpu in (AMPERE, TURING):
        path = choose_path("cuda", cuda=gpu)
        assert (path.device, path.dtype) == (torch.device("cuda"), torch.float16)
        assert path.batch_images and not path.channels_last and not path.prepacked
        assert path.describe() == "cuda, fp16, images batched in one model call"
        assert not choose_path("cuda", cuda=gpu, batch=False).batch_images
        assert choose_path("cuda:1", "fp32", cuda=gpu).device == torch.device("cuda:1")


def test_bf16_on_cuda_needs_a_gpu_that_computes_it() -> None:
    assert choose_path("cuda", "bf16", cuda=AMPERE).dtype == torch.bfloat16
    with pytest.raises(GlideUIError, match="Tesla T4.*no bf16; use --dtype fp16"):
        choose_path("cuda", "bf16", cuda=TURING)


def test_cpu_paths_call_the_model_one_image_at_a_time() -> None:
    for cpu in (AVX2, AMX):
        assert not choose_path("cpu", cpu=cpu).batch_images
