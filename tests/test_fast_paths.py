"""The CPU fast paths (bf16, channels_last, fused GroupNorm+SiLU, prepacked oneDNN weights)
agree with the fp32 path, and the fp32 path is unchanged by them (bit for bit).

Tolerances. bf16 keeps 8 significant bits: one rounding moves a value by at most 2^-8 of
itself (0.4%). The fused norm + scale-shift + SiLU rounds twice (norm, SiLU), its inputs
once, so it stays within 2% of the output's scale. Through a whole tiny UNet bf16 drifts
by 2-3% of the output's scale (bf16 weights and activations), so the model tolerance is
5% of max |fp32 output| elementwise (as in test_unet.py); and the fast path's error may
be at most 1.5 x that of the plain bf16 path (norms and elementwise ops in float32, no
prepacking), so the fusions and prepacking add no error of their own beyond bf16's.
The full-size models' agreement is measured by `python -m bench` (levers: max_err_rel).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from glide_ui import models
from glide_ui.glide import nn as glide_nn
from glide_ui.glide.nn import GroupNorm32, conv2d, linear, norm_silu, packed_bytes
from glide_ui.glide.options import MODEL_NAMES

NORM_TOL = 0.02  # of max |fp32 output|: bf16 inputs, two roundings
MODEL_TOL = 0.05  # of max |fp32 output|: bf16 through a tiny UNet
FUSION_FACTOR = 1.5  # fast path's error / plain bf16 path's error, at most


@pytest.fixture
def switches():
    """Restore the module switches the tests flip."""
    saved = glide_nn.FUSED_NORMS, glide_nn.PREPACKING, glide_nn.PACK_MAX_PIXELS
    yield
    glide_nn.FUSED_NORMS, glide_nn.PREPACKING, glide_nn.PACK_MAX_PIXELS = saved


def _rel_err(out: torch.Tensor, expected: torch.Tensor) -> float:
    return ((out.float() - expected.float()).abs().max() / expected.float().abs().max()).item()


def _norm_case(channels: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    norm = GroupNorm32(channels)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.2 * torch.randn(channels, generator=g))
        norm.bias.copy_(0.1 * torch.randn(channels, generator=g))
    x = torch.randn(2, channels, 8, 8, generator=g) * 3 + 1
    scale, shift = (0.5 * torch.randn(2, channels, 1, 1, generator=g) for _ in range(2))
    return norm, x, scale, shift


# --- fused GroupNorm + scale-shift + SiLU --------------------------------------------------------


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
def test_bf16_norm_silu_agrees_with_fp32(fused: bool, switches) -> None:
    glide_nn.FUSED_NORMS = fused
    norm, x, scale, shift = _norm_case()
    expected = norm_silu(norm, x, scale, shift)
    low = norm.to(torch.bfloat16)
    out = norm_silu(low, x.bfloat16().contiguous(memory_format=torch.channels_last),
                    scale.bfloat16(), shift.bfloat16())
    assert out.dtype == torch.bfloat16
    assert _rel_err(out, expected) <= NORM_TOL


def test_bf16_norm_silu_with_autograd_does_not_write_in_place() -> None:
    norm, x, scale, shift = _norm_case()
    low = norm.to(torch.bfloat16)
    x = x.bfloat16().requires_grad_()
    out = norm_silu(low, x, scale.bfloat16(), shift.bfloat16())
    out.float().sum().backward()
    assert torch.isfinite(x.grad.float()).all() and x.grad.abs().sum() > 0


# --- prepacked oneDNN weights --------------------------------------------------------------------


def test_prepacking_is_on_where_onednn_is() -> None:
    assert glide_nn.PREPACKING == torch.backends.mkldnn.is_available()


def _conv(channels: int = 32, seed: int = 0) -> torch.nn.Conv2d:
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).requires_grad_(False)
    return conv.to(torch.bfloat16, memory_format=torch.channels_last)


def test_prepacked_convolution_equals_the_plain_one() -> None:
    conv = _conv()
    x = torch.randn(2, 32, 8, 8).bfloat16().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = conv2d(conv, x)
        assert packed_bytes(conv) > 0  # the packed kernel ran
        torch.testing.assert_close(out, conv(x), rtol=0.01, atol=0.01)


def test_large_inputs_and_fp32_are_not_prepacked() -> None:
    conv = _conv()
    side = int((glide_nn.PACK_MAX_PIXELS // 2) ** 0.5) * 2
    big = torch.randn(1, 32, side, side).bfloat16().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(conv2d(conv, big), conv(big), rtol=0, atol=0)
        assert packed_bytes(conv) == 0
        plain = conv.float()
        small = torch.randn(1, 32, 4, 4)
        assert torch.equal(conv2d(plain, small), plain(small))
        assert packed_bytes(plain) == 0


@pytest.mark.parametrize("side", [4, 64])  # prepacked weight / the layer's own weight
def test_convolution_with_a_fused_addition_equals_conv_plus_add(side: int) -> None:
    conv = _conv()
    g = torch.Generator().manual_seed(3)
    x, residual = (torch.randn(1, 32, side, side, generator=g).bfloat16()
                   .contiguous(memory_format=torch.channels_last) for _ in range(2))
    with torch.no_grad():
        out = conv2d(conv, x, add=residual)
        expected = conv(x).float() + residual.float()
    assert out.dtype == torch.bfloat16
    assert _rel_err(out, expected) <= 2 ** -7  # one bf16 rounding of the sum
    plain = conv.float()
    with torch.no_grad():
        fp32 = conv2d(plain, x.float(), add=residual.float())
    assert torch.equal(fp32, plain(x.float()) + residual.float())


def test_packed_weight_follows_weight_changes() -> None:
    conv = _conv()
    x = torch.randn(1, 32, 4, 4).bfloat16().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        first = conv2d(conv, x)
        conv.weight.mul_(-1)
        torch.testing.assert_close(conv2d(conv, x), -first + 2 * conv.bias.view(1, -1, 1, 1),
                                   rtol=0.02, atol=0.02)
        torch.testing.assert_close(conv2d(conv, x), conv(x), rtol=0.01, atol=0.01)


def test_autograd_takes_the_plain_path() -> None:
    conv = _conv().requires_grad_(True)
    x = torch.randn(1, 32, 4, 4).bfloat16().contiguous(memory_format=torch.channels_last)
    conv2d(conv, x.requires_grad_()).float().sum().backward()
    assert packed_bytes(conv) == 0 and conv.weight.grad is not None


def test_prepacked_linear_equals_f_linear() -> None:
    torch.manual_seed(0)
    dense = torch.nn.Linear(48, 96).bfloat16().requires_grad_(False)
    x = torch.randn(2, 10, 48).bfloat16()
    with torch.no_grad():
        out = linear(x, dense.weight, dense.bias, dense)
        assert packed_bytes(dense) > 0
        torch.testing.assert_close(out, F.linear(x, dense.weight, dense.bias),
                                   rtol=0.01, atol=0.01)


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
def tiny_pairs() -> dict[str, tuple[torch.nn.Module, torch.nn.Module]]:
    """Each tiny model as the manager prepares it in fp32 and with `--dtype bf16`."""
    fp32 = models.ModelManager("tiny", device="cpu", dtype="fp32")
    bf16 = models.ModelManager("tiny", device="cpu", dtype="bf16")
    return {name: (fp32.get(name), bf16.get(name)) for name in MODEL_NAMES}


def test_bf16_on_the_cpu_is_prepared_channels_last(tiny_pairs) -> None:
    fp32, bf16 = tiny_pairs["base"]
    conv = bf16.input_blocks[0][0]
    assert conv.weight.dtype == torch.bfloat16
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert fp32.input_blocks[0][0].weight.is_contiguous()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_fast_path_agrees_with_fp32(name: str, tiny_pairs, switches) -> None:
    fp32, bf16 = tiny_pairs[name]
    inputs = _inputs(fp32.options)
    with torch.no_grad():
        expected = fp32(**inputs)
        outputs = {}
        for fused in (False, True):
            for prepack in (False, True):
                glide_nn.FUSED_NORMS, glide_nn.PREPACKING = fused, prepack
                outputs[fused, prepack] = bf16(**inputs)
    assert packed_bytes(bf16) > 0
    assert torch.isfinite(expected).all() and expected.abs().max() > 0.1
    plain = _rel_err(outputs[False, False], expected)
    for key, out in outputs.items():
        assert out.dtype == torch.float32
        assert _rel_err(out, expected) <= min(MODEL_TOL, FUSION_FACTOR * plain), key


def test_fp32_model_is_unchanged_by_the_switches(tiny_pairs, switches) -> None:
    fp32, _ = tiny_pairs["base"]
    inputs = _inputs(fp32.options)
    with torch.no_grad():
        expected = fp32(**inputs)
        glide_nn.FUSED_NORMS, glide_nn.PREPACKING = False, False
        assert torch.equal(fp32(**inputs), expected)
    assert packed_bytes(fp32) == 0


def test_bf16_model_gradient_through_x_agrees_with_fp32(tiny_pairs) -> None:
    """CLIP guidance on the predicted image differentiates through the UNet."""
    grads = []
    for model in tiny_pairs["base"]:
        inputs = _inputs(model.options, batch=1)
        x = inputs.pop("x").requires_grad_()
        with torch.enable_grad():
            model(x, **inputs)[:, :3].square().sum().backward()
        grads.append(x.grad.flatten())
    cosine = F.cosine_similarity(grads[0], grads[1], dim=0).item()
    assert cosine > 0.99
