"""The CPU fast paths (channels_last, fused GroupNorm+SiLU, oneDNN-prepacked weights, in
fp32 and bf16) agree with the exact fp32 path, on whatever CPU runs the tests.

Which kernels run is this CPU's capability (`glide_nn.PREPACKED_DTYPES`, probed once):
every test checks what this machine does and names the path in its assertion messages.
On an AVX2-only CPU bf16 is not prepacked (oneDNN refuses its reorder there) and runs
torch's emulated bf16; on AVX512/AMX CPUs it is prepacked. fp32 is prepacked wherever
oneDNN is.

Tolerances. fp32: the fast path sums the same products in another order (blocked NHWC
kernels, scale-shift folded into the norm, the residual added inside the convolution).
Each sum of K terms then moves by at most about sqrt(K) roundings of 2^-24; through a
tiny UNet's ~50 layers of K <= ~600 that is 50 * 25 * 6e-8 ~ 1e-4 of the output's scale
(FP32_MODEL_TOL; measured: 3-5e-6). One layer: a few roundings of 2^-24 (FP32_LAYER_TOL).
bf16 keeps 8 significant bits: one rounding moves a value by at most 2^-8 of itself. The
fused norm + scale-shift + SiLU rounds twice (norm, SiLU), its inputs once: within 2% of
the output's scale. Through a whole tiny UNet bf16 drifts by 2-3%, so the model tolerance
is 5% of max |fp32 output| (as in test_unet.py), and the fast path's error may be at most
1.5 x that of the plain bf16 path (norms and elementwise ops in float32, no prepacking),
so the fusions and prepacking add no error of their own beyond bf16's.
The full-size models' agreement is measured by `python -m bench` (levers: max_err_rel).
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F

from glide_ui import models
from glide_ui.glide import nn as glide_nn
from glide_ui.glide.nn import (
    GroupNorm32,
    ReleasedParameter,
    conv2d,
    linear,
    norm_silu,
    packed_bytes,
    released_bytes,
    resident_bytes,
)
from glide_ui.glide.options import MODEL_NAMES

NORM_TOL = 0.02  # of max |fp32 output|: bf16 inputs, two roundings
MODEL_TOL = 0.05  # of max |fp32 output|: bf16 through a tiny UNet
FUSION_FACTOR = 1.5  # fast path's error / plain bf16 path's error, at most
FP32_LAYER_TOL = 2**-20  # of max |output|: a few fp32 roundings in another order
FP32_MODEL_TOL = 1e-4  # of max |output|: fp32 reordering through a tiny UNet
CL = torch.channels_last
ISA = torch.backends.cpu.get_cpu_capability()
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.bfloat16, id="bf16")]


def path_of(dtype: torch.dtype) -> str:
    """The kernel path this CPU takes for a channels_last model in `dtype`."""
    kind = "prepacked oneDNN" if dtype in glide_nn.PREPACKED_DTYPES else "plain (not prepacked)"
    return f"{ISA} CPU, {str(dtype).removeprefix('torch.')}: {kind}"


@pytest.fixture
def switches():
    """Restore the module switches the tests flip."""
    saved = glide_nn.FUSED_NORMS, glide_nn.PREPACKING, glide_nn.PACK_MAX_PIXELS
    yield
    glide_nn.FUSED_NORMS, glide_nn.PREPACKING, glide_nn.PACK_MAX_PIXELS = saved


def _rel_err(out: torch.Tensor, expected: torch.Tensor) -> float:
    return ((out.float() - expected.float()).abs().max() / expected.float().abs().max()).item()


# --- the capability ------------------------------------------------------------------------------


def _reorder_runs(dtype: torch.dtype) -> bool:
    try:
        torch.ops.mkldnn._reorder_convolution_weight(
            torch.ones(8, 8, 3, 3, dtype=dtype), [1, 1], [1, 1], [1, 1], 1, [1, 8, 4, 4])
        return True
    except RuntimeError:
        return False


@pytest.mark.parametrize("dtype", DTYPES)
def test_prepacking_is_chosen_by_what_this_cpu_runs(dtype: torch.dtype) -> None:
    """The probe's answer is what oneDNN does here: prepacked where its reorder runs."""
    if not torch.backends.mkldnn.is_available():
        assert glide_nn.PREPACKED_DTYPES == frozenset(), path_of(dtype)
        return
    can = _reorder_runs(dtype)
    if dtype == torch.bfloat16:
        can = can and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert (dtype in glide_nn.PREPACKED_DTYPES) == can, path_of(dtype)
    if dtype == torch.float32:
        assert can, "oneDNN runs fp32 prepacked kernels on every x86-64 CPU"


# --- fused GroupNorm + scale-shift + SiLU --------------------------------------------------------


def _norm_case(channels: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    norm = GroupNorm32(channels)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.2 * torch.randn(channels, generator=g))
        norm.bias.copy_(0.1 * torch.randn(channels, generator=g))
    x = torch.randn(2, channels, 8, 8, generator=g) * 3 + 1
    scale, shift = (0.5 * torch.randn(2, channels, 1, 1, generator=g) for _ in range(2))
    return norm, x, scale, shift


@pytest.mark.parametrize("grad", [False, True])
def test_fp32_norm_silu_is_bit_identical_to_the_plain_layers(grad: bool) -> None:
    norm, x, scale, shift = _norm_case()
    expected = F.silu(norm(x) * (1 + scale) + shift)
    with torch.set_grad_enabled(grad):
        out = norm_silu(norm, x.requires_grad_(grad), scale, shift)
    assert torch.equal(out, expected)
    assert torch.equal(norm_silu(norm, x.detach()), F.silu(norm(x.detach())))
    if grad:  # the out-of-place branch keeps the graph
        out.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("fused", [True, False])
def test_channels_last_fp32_norm_silu_agrees_with_the_plain_layers(fused: bool,
                                                                   switches) -> None:
    glide_nn.FUSED_NORMS = fused
    norm, x, scale, shift = _norm_case()
    expected = F.silu(norm(x) * (1 + scale) + shift)
    out = norm_silu(norm, x.contiguous(memory_format=CL), scale, shift)
    assert out.dtype == torch.float32
    assert _rel_err(out, expected) <= FP32_LAYER_TOL, f"{ISA} CPU, fused={fused}"


@pytest.mark.parametrize("fused", [True, False])
def test_bf16_norm_silu_agrees_with_fp32(fused: bool, switches) -> None:
    glide_nn.FUSED_NORMS = fused
    norm, x, scale, shift = _norm_case()
    expected = norm_silu(norm, x, scale, shift)
    low = norm.to(torch.bfloat16)
    out = norm_silu(low, x.bfloat16().contiguous(memory_format=CL),
                    scale.bfloat16(), shift.bfloat16())
    assert out.dtype == torch.bfloat16
    assert _rel_err(out, expected) <= NORM_TOL, f"{ISA} CPU, fused={fused}"


def test_bf16_norm_silu_with_autograd_does_not_write_in_place() -> None:
    norm, x, scale, shift = _norm_case()
    low = norm.to(torch.bfloat16)
    x = x.bfloat16().requires_grad_()
    out = norm_silu(low, x, scale.bfloat16(), shift.bfloat16())
    out.float().sum().backward()
    assert torch.isfinite(x.grad.float()).all() and x.grad.abs().sum() > 0


# --- prepacked oneDNN weights --------------------------------------------------------------------


def _conv(dtype: torch.dtype, channels: int = 32, seed: int = 0) -> torch.nn.Conv2d:
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).requires_grad_(False)
    return conv.to(dtype, memory_format=CL)


def _x(dtype: torch.dtype, side: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 32, side, side, generator=g).to(dtype).contiguous(memory_format=CL)


def _layer_tol(dtype: torch.dtype) -> float:
    return FP32_LAYER_TOL if dtype == torch.float32 else 2**-7  # bf16: one rounding


@pytest.mark.parametrize("dtype", DTYPES)
def test_channels_last_convolution_is_prepacked_where_the_cpu_can(dtype: torch.dtype) -> None:
    conv, x = _conv(dtype), _x(dtype, 8)
    with torch.no_grad():
        out = conv2d(conv, x)
        expected = conv(x)
    if dtype in glide_nn.PREPACKED_DTYPES:
        assert packed_bytes(conv) > 0, path_of(dtype)
        assert _rel_err(out, expected) <= _layer_tol(dtype), path_of(dtype)
    else:  # the fallback is the layer itself
        assert packed_bytes(conv) == 0 and torch.equal(out, expected), path_of(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_or_contiguous_inputs_take_the_layer_itself(dtype: torch.dtype) -> None:
    conv = _conv(dtype)
    side = int((glide_nn.PACK_MAX_PIXELS // 2) ** 0.5) * 2
    with torch.no_grad():
        big = _x(dtype, side, batch=1)
        assert torch.equal(conv2d(conv, big), conv(big)), path_of(dtype)
        small = torch.randn(1, 32, 4, 4).to(dtype)  # contiguous: the exact path
        assert torch.equal(conv2d(conv, small), conv(small)), path_of(dtype)
    assert packed_bytes(conv) == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("side", [4, 64])  # prepacked weight / the layer's own weight
def test_convolution_with_a_fused_addition_equals_conv_plus_add(side: int,
                                                               dtype: torch.dtype) -> None:
    conv = _conv(dtype)
    x, residual = _x(dtype, side, 1, seed=3), _x(dtype, side, 1, seed=4)
    with torch.no_grad():
        out = conv2d(conv, x, add=residual)
        expected = conv(x).float() + residual.float()
    assert out.dtype == dtype
    assert _rel_err(out, expected) <= _layer_tol(dtype), path_of(dtype)  # one rounding more
    plain = conv.to(memory_format=torch.contiguous_format)
    x, residual = x.contiguous(), residual.contiguous()
    with torch.no_grad():  # the exact path adds after the layer, bit for bit
        assert torch.equal(conv2d(plain, x, add=residual), plain(x) + residual)


@pytest.mark.parametrize("dtype", DTYPES)
def test_packed_weight_follows_weight_changes(dtype: torch.dtype) -> None:
    conv, x = _conv(dtype), _x(dtype, 4, 1)
    with torch.no_grad():
        first = conv2d(conv, x)
        conv.weight.mul_(-1)
        flipped = -first + 2 * conv.bias.view(1, -1, 1, 1)
        assert _rel_err(conv2d(conv, x), flipped) <= 4 * _layer_tol(dtype), path_of(dtype)
        assert _rel_err(conv2d(conv, x), conv(x)) <= _layer_tol(dtype), path_of(dtype)


def test_autograd_takes_the_plain_path() -> None:
    for dtype in (torch.float32, torch.bfloat16):
        conv = _conv(dtype).requires_grad_(True)
        conv2d(conv, _x(dtype, 4, 1).requires_grad_()).float().sum().backward()
        assert packed_bytes(conv) == 0 and conv.weight.grad is not None, path_of(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_is_prepacked_in_bf16_only_where_the_cpu_can(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    dense = torch.nn.Linear(48, 96).to(dtype).requires_grad_(False)
    x = torch.randn(2, 10, 48).to(dtype)
    with torch.no_grad():
        out = linear(x, dense)
        expected = F.linear(x, dense.weight, dense.bias)
    if dtype == torch.bfloat16 and dtype in glide_nn.PREPACKED_DTYPES:
        assert packed_bytes(dense) > 0, path_of(dtype)
        assert _rel_err(out, expected) <= _layer_tol(dtype), path_of(dtype)
    else:  # fp32 GEMMs are left to MKL, which packs its own
        assert packed_bytes(dense) == 0 and torch.equal(out, expected), path_of(dtype)


def test_a_model_with_packed_weights_can_be_copied() -> None:
    conv, x = _conv(torch.float32), _x(torch.float32, 8)
    with torch.no_grad():
        out = conv2d(conv, x)
        twin = copy.deepcopy(conv)
        assert torch.equal(conv2d(twin, x), out)


# --- one copy of each weight ---------------------------------------------------------------------


def _bits(t: torch.Tensor) -> torch.Tensor:
    """t's bit patterns, so equality is bitwise (NaN and -0.0 included)."""
    return t.detach().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _layers(dtype: torch.dtype) -> list[tuple[torch.nn.Module, torch.Tensor, object]]:
    """A convolution and the two linear forms the UNet packs, each with an input and how
    it is run on the fast path."""
    torch.manual_seed(1)
    dense = torch.nn.Linear(64, 128).to(dtype).requires_grad_(False)
    pointwise = torch.nn.Conv1d(64, 192, 1).to(dtype).requires_grad_(False)
    tokens = torch.randn(2, 10, 64).to(dtype)
    def token_major(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return linear(x, layer)

    return [(_conv(dtype), _x(dtype, 8), conv2d), (dense, tokens, token_major),
            (pointwise, tokens, token_major)]


def _packs_in(layer: torch.nn.Module, dtype: torch.dtype) -> bool:
    """Whether this CPU packs `layer`'s weight in `dtype` (fp32 linears are MKL's)."""
    return dtype in glide_nn.PREPACKED_DTYPES and (
        isinstance(layer, torch.nn.Conv2d) or dtype == torch.bfloat16)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_packed_layer_holds_one_copy_of_its_weight(dtype: torch.dtype) -> None:
    for layer, x, run in _layers(dtype):
        weight_bytes = layer.weight.numel() * layer.weight.element_size()
        with torch.inference_mode():
            first = run(layer, x)
            second = run(layer, x)  # packed already: nothing is made or restored
        assert torch.equal(first, second), path_of(dtype)
        if not _packs_in(layer, dtype):
            assert type(layer.weight) is torch.nn.Parameter and released_bytes(layer) == 0
            continue
        assert isinstance(layer.weight, ReleasedParameter), path_of(dtype)
        assert released_bytes(layer) == weight_bytes, path_of(dtype)
        # What stays resident: the packed copy and the bias. (oneDNN pads widths to its
        # blocks, up to 64: GLIDE's widths are multiples of 64 but for the first and last
        # convolutions, a few KB.)
        assert resident_bytes(layer) == packed_bytes(layer) + layer.bias.numel() * \
            layer.bias.element_size()
        assert packed_bytes(layer) == weight_bytes, path_of(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_released_weight_comes_back_bit_for_bit(dtype: torch.dtype) -> None:
    """state_dict, deepcopy, pickling and .to() each see the plain weight: the same
    values bit for bit and the same strides, on the same Parameter object."""
    for layer, x, run in _layers(dtype):
        plain = layer.weight.detach().clone(memory_format=torch.preserve_format)
        parameter = layer.weight
        readers = {
            "state_dict": lambda m: m.state_dict()["weight"],
            "deepcopy": lambda m: copy.deepcopy(m).weight,
            "torch.save": lambda m: _saved_and_loaded(m).weight,
            "to(float64)": lambda m: m.to(torch.float64).weight.to(dtype),
        }
        for how, read in readers.items():
            layer.to(dtype)
            with torch.inference_mode():
                run(layer, x)
            got = read(layer)
            assert type(got) is not ReleasedParameter, how
            assert torch.equal(_bits(got), _bits(plain)) and got.stride() == plain.stride(), \
                f"{path_of(dtype)}: {type(layer).__name__} via {how}"
            assert layer.weight is parameter, how  # optimizers keep the same object
        layer.to(dtype)
        with torch.inference_mode():  # and the model still runs, repacked where needed
            assert torch.equal(_bits(run(layer, x)), _bits(run(copy.deepcopy(layer), x)))


def _saved_and_loaded(module: torch.nn.Module) -> torch.nn.Module:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_released_layer_can_be_fine_tuned(dtype: torch.dtype) -> None:
    """After inference has released its weight, training sees the plain weight: the same
    gradient and step as a twin that never ran the fast path, and inference afterwards
    uses the new weight."""
    conv, x = _conv(dtype), _x(dtype, 8)
    twin = copy.deepcopy(conv)
    with torch.inference_mode():
        conv2d(conv, x)
    for layer in (conv, twin):
        layer.requires_grad_(True)
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
        layer(x).float().square().mean().backward()
        optimizer.step()
    assert torch.equal(_bits(conv.weight), _bits(twin.weight)), path_of(dtype)
    assert torch.equal(_bits(conv.weight.grad), _bits(twin.weight.grad))
    conv.requires_grad_(False)
    with torch.inference_mode():
        assert _rel_err(conv2d(conv, x), twin(x)) <= _layer_tol(dtype), path_of(dtype)


def test_large_inputs_use_a_released_weight_without_restoring_it() -> None:
    conv = _conv(torch.float32)
    side = int((glide_nn.PACK_MAX_PIXELS // 2) ** 0.5) * 2
    small, big = _x(torch.float32, 8), _x(torch.float32, side, batch=1)
    with torch.inference_mode():
        conv2d(conv, small)
        expected = torch.nn.functional.conv2d(big, glide_nn.plain_weight(conv), conv.bias,
                                              padding=1)
        out = conv2d(conv, big)
    assert torch.equal(out, expected)
    assert isinstance(conv.weight, ReleasedParameter) == (
        torch.float32 in glide_nn.PREPACKED_DTYPES), path_of(torch.float32)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_model_that_ran_gives_back_the_weights_it_was_built_with(name: str,
                                                                   tiny_models) -> None:
    """Every tensor of each tiny model after its forwards (fp32 and bf16, released where
    packed) equals the same model freshly built, bit for bit."""
    for label, dtype in (("fp32", "fp32"), ("bf16", "bf16")):
        model = tiny_models[name][label]
        with torch.inference_mode():
            model(**_inputs(model.options))
        fresh = models.ModelManager("tiny", device="cpu", dtype=dtype).get(name).state_dict()
        state = model.state_dict()
        assert state.keys() == fresh.keys()
        for key, tensor in state.items():
            assert torch.equal(_bits(tensor), _bits(fresh[key])), f"{name} {label} {key}"


# --- whole models ---------------------------------------------------------------------------------


def _inputs(options: dict, batch: int = 2, size: int | None = None) -> dict:
    g = torch.Generator().manual_seed(1)
    size = size or (64 if options["image_size"] == 64 else 128)
    ctx = options["text_ctx"]
    mask = torch.arange(ctx)[None].expand(batch, ctx) < 6
    inputs = {"x": torch.randn(batch, 3, size, size, generator=g),
              "timesteps": torch.tensor([700, 30][:batch]),
              "tokens": torch.where(mask, torch.randint(0, 50256, (batch, ctx), generator=g),
                                    50256),
              "mask": mask}
    if options["super_res"]:
        inputs["low_res"] = torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1
    if options["inpaint"]:
        inputs["inpaint_image"] = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
        inputs["inpaint_mask"] = (torch.rand(batch, 1, size, size, generator=g) > 0.5).float()
    return inputs


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, dict[str, torch.nn.Module]]:
    """Each tiny model as the manager prepares it in fp32 and with `--dtype bf16`, and the
    fp32 one in the contiguous layout (the exact path, the reference's arithmetic)."""
    fp32 = models.ModelManager("tiny", device="cpu", dtype="fp32")
    bf16 = models.ModelManager("tiny", device="cpu", dtype="bf16")
    return {name: {"fp32": fp32.get(name), "bf16": bf16.get(name),
                   "exact": copy.deepcopy(fp32.get(name)).to(
                       memory_format=torch.contiguous_format)}
            for name in MODEL_NAMES}


def test_the_manager_prepares_cpu_models_channels_last(tiny_models) -> None:
    for dtype in ("fp32", "bf16"):
        conv = tiny_models["base"][dtype].input_blocks[0][0]
        assert conv.weight.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        assert conv.weight.is_contiguous(memory_format=CL) and not conv.weight.is_contiguous()


def _under_each_switch(model: torch.nn.Module, exact: torch.nn.Module):
    """The exact model's output, and `model`'s with each (fused norms, prepacking) switch."""
    inputs = _inputs(exact.options)
    with torch.no_grad():
        expected = exact(**inputs)
        outputs = {}
        for fused in (False, True):
            for prepack in (False, True):
                glide_nn.FUSED_NORMS, glide_nn.PREPACKING = fused, prepack
                outputs[fused, prepack] = model(**inputs)
    return expected, outputs


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fp32_fast_path_agrees_with_the_exact_path(name: str, tiny_models, switches) -> None:
    fast, exact = tiny_models[name]["fp32"], tiny_models[name]["exact"]
    expected, outputs = _under_each_switch(fast, exact)
    assert (packed_bytes(fast) > 0) == (torch.float32 in glide_nn.PREPACKED_DTYPES)
    assert packed_bytes(exact) == 0  # the contiguous model never packs
    for key, out in outputs.items():
        assert _rel_err(out, expected) <= FP32_MODEL_TOL, f"{path_of(torch.float32)}, {key}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_bf16_path_agrees_with_fp32(name: str, tiny_models, switches) -> None:
    bf16, exact = tiny_models[name]["bf16"], tiny_models[name]["exact"]
    expected, outputs = _under_each_switch(bf16, exact)
    assert (packed_bytes(bf16) > 0) == (torch.bfloat16 in glide_nn.PREPACKED_DTYPES), \
        path_of(torch.bfloat16)
    assert torch.isfinite(expected).all() and expected.abs().max() > 0.1
    plain = _rel_err(outputs[False, False], expected)
    for key, out in outputs.items():
        assert out.dtype == torch.float32
        assert _rel_err(out, expected) <= min(MODEL_TOL, FUSION_FACTOR * plain), \
            f"{path_of(torch.bfloat16)}, fused/prepacked {key}"


def test_the_exact_fp32_model_is_unchanged_by_the_switches(tiny_models, switches) -> None:
    exact = tiny_models["base"]["exact"]
    inputs = _inputs(exact.options)
    with torch.no_grad():
        expected = exact(**inputs)
        glide_nn.FUSED_NORMS, glide_nn.PREPACKING = False, False
        assert torch.equal(exact(**inputs), expected)
    assert packed_bytes(exact) == 0


def test_bf16_model_gradient_through_x_agrees_with_fp32(tiny_models) -> None:
    """CLIP guidance on the predicted image differentiates through the UNet."""
    grads = []
    for model in (tiny_models["base"]["exact"], tiny_models["base"]["bf16"]):
        inputs = _inputs(model.options, batch=1)
        x = inputs.pop("x").requires_grad_()
        with torch.enable_grad():
            model(x, **inputs)[:, :3].square().sum().backward()
        grads.append(x.grad.flatten())
    cosine = F.cosine_similarity(grads[0], grads[1], dim=0).item()
    assert cosine > 0.99, path_of(torch.bfloat16)
