"""Building blocks shared by the GLIDE networks.

Norms compute and return float32 whatever the module dtype (a bf16/fp16 model keeps its
statistics accurate); callers cast the result to the dtype of the next layer. The UNet
uses the fused forms `group_norm_as_input` / `norm_silu` and, for bf16 on the CPU,
`conv2d` / `linear` with prepacked oneDNN weights; in float32 they compute exactly what
the plain layers do.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups and eps 1e-5, computed in float32 (returns float32; a
    float64 model keeps float64)."""

    def __init__(self, channels: int) -> None:
        super().__init__(32, channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _at_least_fp32(x)
        return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype),
                            self.eps)


FUSED_NORMS = True
"""On the CPU, in bf16 or in a channels_last model: normalise in one kernel with the
scale-shift folded into its affine map (bf16: mixed precision, bf16 in, float32 arithmetic,
bf16 out) instead of converting and scaling around it. A switch for the bench."""


def _fused(x: torch.Tensor) -> bool:
    return (FUSED_NORMS and x.device.type == "cpu"
            and (x.dtype in (torch.bfloat16, torch.float16)
                 or (x.dtype == torch.float32 and _channels_last(x))))


def group_norm_as_input(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """norm(x) with float32 statistics and affine map, returned in x's dtype."""
    if _fused(x):
        return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
    return norm(x).to(x.dtype)


def norm_silu(norm: nn.GroupNorm, x: torch.Tensor, scale: torch.Tensor | None = None,
              shift: torch.Tensor | None = None) -> torch.Tensor:
    """silu(norm(x) * (1 + scale) + shift) (scale-shift optional), returned in x's dtype.

    Computed in float32 (float32 x gives the reference's numbers bit for bit), except on
    the fused CPU path: there the scale-shift is folded into the norm's affine map (per
    row, in float32), so one mixed-precision kernel gives the scaled, shifted norm rounded
    once to x's dtype, and SiLU follows in that dtype. Without autograd SiLU runs in place.
    """
    if _fused(x):
        h = _scaled_group_norm(norm, x, scale, shift)
    else:
        h = norm(x)
        if scale is not None and shift is not None:
            h = h * (1 + scale.float()) + shift.float()
    return F.silu(h, inplace=not h.requires_grad).to(x.dtype)


def _scaled_group_norm(norm: nn.GroupNorm, x: torch.Tensor, scale: torch.Tensor | None,
                       shift: torch.Tensor | None) -> torch.Tensor:
    """norm(x) * (1 + scale) + shift as F.group_norm with a per-row affine map."""
    if scale is None or shift is None:
        return group_norm_as_input(norm, x)
    gain = 1 + scale.float().flatten(1)  # [N, C]
    weight = norm.weight.float() * gain
    bias = norm.bias.float() * gain + shift.float().flatten(1)
    rows = [F.group_norm(x[i:i + 1], norm.num_groups, weight[i], bias[i], norm.eps)
            for i in range(len(x))]
    return rows[0] if len(rows) == 1 else torch.cat(rows)


class LayerNorm(nn.LayerNorm):
    """LayerNorm (eps 1e-5) computed in float32 (returns float32; a float64 model keeps
    float64)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _at_least_fp32(x)
        return F.layer_norm(x, self.normalized_shape, self.weight.to(x.dtype),
                            self.bias.to(x.dtype), self.eps)


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding [N, dim] in float32: [cos(t f) | sin(t f)], f_j = 10000^(-j/half).

    An odd `dim` gets a trailing zero column.
    """
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    freqs = torch.exp(-math.log(10000) * exponent)
    args = timesteps.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def split_heads(x: torch.Tensor, heads: int, parts: int) -> tuple[torch.Tensor, ...]:
    """Split [B, T, heads * parts * c] (head-major: each head owns [part_0 | part_1 | ...])
    into `parts` tensors of shape [B, heads, T, c]."""
    batch, length, width = x.shape
    x = x.view(batch, length, heads, parts, width // (heads * parts))
    return x.permute(3, 0, 2, 1, 4).unbind(0)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, T, c] -> [B, T, heads * c]."""
    batch, heads, length, channels = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * channels)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              causal: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(c)) v over [B, heads, T, c] tensors, no mask.

    The reference scales q and k each by c^(-1/4) before the product; one 1/sqrt(c) is the
    same up to rounding. The softmax runs in float32 for float32 inputs.
    """
    scale = q.shape[-1] ** -0.5
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


# --- oneDNN weight prepacking (CPU, inference) ------------------------------------------------
#
# A oneDNN convolution on the CPU reorders its weight into oneDNN's blocked layout on every
# call. Where the weight is large next to the activations (the deep, small-spatial levels)
# that reorder costs more than the convolution itself, so layers keep a prepacked copy of
# their weight (made on first use, remade when the weight changes) and call oneDNN's
# prepacked kernels. Only models prepared in channels_last take this path (the manager
# prepares them so where it pays); a contiguous float32 model computes exactly what the
# reference does.

PACK_MAX_PIXELS = 256 * 256 * 2
"""Convolutions whose input has at most this many pixels (batch x height x width) use a
prepacked weight: every layer of the app's per-image model calls (base: 2 rows at 64 px;
upsampler: 1 row at 256 px; inpainting: 2 rows). Measured on the full-size upsampler on an
idle machine (`python -m bench.levers`): packing its 128 and 256 px levels too took a
forward from 1.34 s to 1.09 s (median of 5); their weights are small, so the copies are."""

# module -> (weight stamp, {input shape: packed weight}); outside the modules, so copying
# or pickling a model never meets oneDNN's opaque tensors.
_PACKS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, dict]] = weakref.WeakKeyDictionary()
_PACK_ARGS = ([1, 1], [1, 1], [1, 1], 1)  # padding, stride, dilation, groups of the probe


def _prepacked_kernels_run(dtype: torch.dtype) -> bool:
    """Whether oneDNN's prepacked convolution and linear kernels run in `dtype` on this CPU,
    tried once on a tiny input. (bf16 needs AVX512BW/VL/DQ or AVX-NE-CONVERT: on an
    AVX2-only CPU oneDNN refuses the bf16 reorder, and torch emulates bf16 elsewhere.)"""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        x = torch.ones(1, 8, 4, 4, dtype=dtype).contiguous(memory_format=torch.channels_last)
        weight = torch.ones(8, 8, 3, 3, dtype=dtype)
        packed = torch.ops.mkldnn._reorder_convolution_weight(weight, *_PACK_ARGS,
                                                              list(x.shape))
        torch.ops.mkldnn._convolution_pointwise(x, packed, None, *_PACK_ARGS, "none", [], "")
        dense = torch.ops.mkldnn._reorder_linear_weight(weight[:, :, 0, 0].contiguous(), None)
        torch.ops.mkldnn._linear_pointwise(x[:, :, 0, 0], dense, None, "none", [], "")
        return True
    except (AttributeError, RuntimeError):
        return False


PREPACKED_DTYPES: frozenset[torch.dtype] = frozenset(
    dtype for dtype in (torch.float32, torch.bfloat16) if _prepacked_kernels_run(dtype))
"""The dtypes in which this CPU runs oneDNN's prepacked kernels (a capability, probed once)."""

PREPACKING = True
"""Use prepacked weights where the CPU can (`PREPACKED_DTYPES`). A switch for the bench."""


def _packable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (PREPACKING and x.device.type == "cpu" and x.dtype in PREPACKED_DTYPES
            and weight.dtype == x.dtype
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)))


def _channels_last(x: torch.Tensor) -> bool:
    """x [N, C, H, W] is stored channels_last, as activations are in a model prepared so."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _packed_weight(module: nn.Module, key: tuple, pack: Any) -> torch.Tensor:
    """The module's packed weight for `key`, made by `pack()` when missing or stale."""
    weight = module.weight
    stamp = (weight.data_ptr(), weight._version, weight.dtype, weight.shape)
    cache = _PACKS.get(module)
    if cache is None or cache[0] != stamp:
        cache = _PACKS[module] = (stamp, {})
    packs = cache[1]
    if key not in packs:
        packs[key] = pack()
    return packs[key]


def conv2d(conv: nn.Conv2d, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """conv(x) (+ add); on the CPU in bf16 without autograd, small inputs use a prepacked
    weight and the addition is done by the convolution's own kernel, in float32 before
    its single rounding (saves a pass over the output at the large upsampler levels)."""
    if not (_packable(x, conv.weight) and _channels_last(x)) or conv.groups != 1:
        return _plus(conv(x), add)
    args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    weight = conv.weight
    if x.shape[0] * x.shape[2] * x.shape[3] <= PACK_MAX_PIXELS:
        weight = _packed_weight(conv, tuple(x.shape), lambda: torch.ops.mkldnn
                                ._reorder_convolution_weight(conv.weight, *args, list(x.shape)))
    elif add is None:
        return conv(x)
    if add is None:
        return torch.ops.mkldnn._convolution_pointwise(x, weight, conv.bias, *args, "none", [],
                                                       "")
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, add.contiguous(memory_format=torch.channels_last), weight, conv.bias, *args, "add",
        1.0, None, [], None)


def _plus(h: torch.Tensor, add: torch.Tensor | None) -> torch.Tensor:
    """h + add, into h when no gradient is recorded (h must be a fresh tensor)."""
    if add is None:
        return h
    return h + add if h.requires_grad else h.add_(add)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           owner: nn.Module) -> torch.Tensor:
    """F.linear(x, weight, bias); on the CPU in bf16 without autograd, with a packed weight
    cached on `owner` (whose `weight` is `weight` up to a view)."""
    if not (_packable(x, weight) and x.dtype == torch.bfloat16):  # fp32: MKL packs its own
        return F.linear(x, weight, bias)
    packed = _packed_weight(owner, (), lambda: torch.ops.mkldnn._reorder_linear_weight(
        weight.contiguous(), None))
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def packed_bytes(model: nn.Module) -> int:
    """Bytes of the prepacked weight copies `model`'s layers hold (made on first use)."""
    total = 0
    for module in model.modules():
        cache = _PACKS.get(module)
        if cache is not None:
            total += sum(t.numel() * t.element_size() for t in cache[1].values())
    return total


def prepack_allowance(model: nn.Module, dtype: torch.dtype, device: torch.device) -> int:
    """At most the bytes `model`'s packed copies take once it runs in `dtype` on `device`
    (one input shape per layer): its convolution and linear weights where prepacking
    applies, else 0. Known before any forward, even on the meta device, for budgets."""
    if not (PREPACKING and dtype in PREPACKED_DTYPES and device.type == "cpu"):
        return 0
    layers = (nn.Conv1d, nn.Conv2d, nn.Linear)
    return sum(m.weight.numel() * dtype.itemsize for m in model.modules()
               if isinstance(m, layers))
