"""fp16 and bf16 as the GPU runs them, computed on the CPU (slowly), before a GPU is lent.

On CUDA the models run contiguous, in the dtype, with norms, softmax statistics and the
timestep embedding in float32 (glide.nn) and no CPU fusion or prepacking; here the same
arithmetic is run by torch's CPU kernels with the CPU fusions switched off
(`FUSED_NORMS`; fp16 is never prepacked, nor a contiguous model).

Tolerance, from the formats: a half-precision format with p significant bits rounds a
value by at most u = 2^-p of itself (fp16: p = 11, u = 4.9e-4; bf16: p = 8, u = 3.9e-3).
Every layer's output is stored rounded once; the float32 norms rescale each block's
input, so errors do not compound but add along the residual stream. A tiny UNet stores
about 100 rounded tensors on its longest path (about 25 blocks of convolution, norm,
linear and attention), which as a random walk gives sqrt(100) u = 10 u of the output's
scale, 100 u at worst. HALF_TOL is 16 u of max |fp32 output| (measured on the four
fixtures: fp16 4.4-7.9 u, bf16 6.7-11.3 u).
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import reference_dir

from glide_ui.compute import ComputePath
from glide_ui.glide import nn as glide_nn
from glide_ui.glide.unet import create_model
from glide_ui.models import ModelManager
from glide_ui.pipelines.events import Preview, Result
from glide_ui.pipelines.requests import Text2ImRequest
from glide_ui.pipelines.text2im import text2im

HALF = {"fp16": (torch.float16, 2**-11), "bf16": (torch.bfloat16, 2**-8)}
HALF_TOL = 16  # units of roundoff (see the module's docstring)
MODEL_FIXTURES = sorted(r for r in json.loads(
    (reference_dir() / "manifest.json").read_text(encoding="utf-8"))["files"]
    if r.startswith("models/"))


@pytest.fixture
def gpu_arithmetic():
    """The CUDA path's arithmetic on the CPU: no fused CPU norms, no oneDNN packing."""
    saved = glide_nn.FUSED_NORMS, glide_nn.PREPACKING
    glide_nn.FUSED_NORMS = glide_nn.PREPACKING = False
    yield
    glide_nn.FUSED_NORMS, glide_nn.PREPACKING = saved


@pytest.mark.parametrize("label", HALF)
@pytest.mark.parametrize("rel", MODEL_FIXTURES)
def test_every_model_fixture_in_half_precision(rel: str, label: str, gpu_arithmetic) -> None:
    dtype, unit = HALF[label]
    expected = torch.load(reference_dir() / rel, weights_only=True)
    model = create_model(expected["options"])
    model.load_state_dict(expected["state_dict"], strict=True)
    model.eval().to(dtype)
    with torch.no_grad():
        out = model(**expected["inputs"])
    reference = expected["output"]
    assert out.dtype == torch.float32 and torch.isfinite(out).all(), f"{rel} {label}"
    error = ((out - reference).abs().max() / reference.abs().max()).item()
    assert error <= HALF_TOL * unit, f"{rel} in {label}: {error / unit:.1f} u of max |output|"


class HalfOnCpu(ModelManager):
    """The tiny models on the path CUDA gets (contiguous, `dtype`), computed on the CPU,
    checking that no model call gives an inf or a NaN."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__("tiny", device="cpu", dtype="fp32")
        self.path = ComputePath(torch.device("cpu"), dtype)
        self.dtype = dtype
        self.calls = 0

    def _load(self, name: str) -> torch.nn.Module:
        model = super()._load(name)
        model.register_forward_hook(self._check)
        return model

    def _check(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.calls += 1
        assert torch.isfinite(output).all(), f"{type(module).__name__} in {self.dtype}"


@pytest.mark.parametrize("label", HALF)
def test_a_full_sample_in_half_precision_stays_finite(label: str, gpu_arithmetic) -> None:
    """text2im through both stages (base with guidance, then the upsampler) on the tiny
    models: every model call finite, a picture at the end. 10 + 5 steps of the 1000-step
    schedule spread over all noise levels, as the default 100 + 27 do (fp16 convolutions
    take seconds each on the CPU)."""
    manager = HalfOnCpu(HALF[label][0])
    request = Text2ImRequest(prompt="a corgi in a field of flowers", seed=3,
                             base_respacing="10", upsample_respacing="5",
                             preview_interval=0.0)
    events = list(text2im(request, manager))
    results = [e for e in events if isinstance(e, Result)]
    assert len(results) == 1 and results[0].images[0].size == (256, 256)
    assert manager.calls == 10 + 5, manager.calls  # one call per step, CFG rows batched
    assert any(isinstance(e, Preview) for e in events)
    assert manager.get("base").dtype == HALF[label][0]
