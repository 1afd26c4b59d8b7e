"""Building blocks shared by the GLIDE networks.

Norms compute and return float32 whatever the module dtype (a bf16/fp16 model keeps its
statistics accurate); callers cast the result to the dtype of the next layer. The UNet
uses the fused forms `group_norm_as_input` / `norm_silu` and, for bf16 on the CPU,
`conv2d` / `linear` with prepacked oneDNN weights; in float32 they compute exactly what
the plain layers do.
"""

from __future__ import annotations

import itertools
import math
import threading
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch._C import _disabled_torch_function_impl
from torch.utils import _pytree as pytree

from glide_ui import heap


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
_LOCK = threading.RLock()  # packing, releasing and restoring weights (requests share models)


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
        return torch.equal(packed.to_dense(), weight) and torch.equal(
            dense.to_dense(), weight[:, :, 0, 0])
    except (AttributeError, RuntimeError):
        return False


PREPACKED_DTYPES: frozenset[torch.dtype] = frozenset(
    dtype for dtype in (torch.float32, torch.bfloat16) if _prepacked_kernels_run(dtype))
"""The dtypes in which this CPU runs oneDNN's prepacked kernels (a capability, probed once)."""

PREPACKING = True
"""Use prepacked weights where the CPU can (`PREPACKED_DTYPES`). A switch for the bench."""

RELEASING = True
"""Once a layer's weight is packed, free its plain tensor (`ReleasedParameter`): one copy
of every weight is resident. A switch for the bench."""


def _packable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (PREPACKING and x.device.type == "cpu" and x.dtype in PREPACKED_DTYPES
            and weight.dtype == x.dtype
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)))


def _channels_last(x: torch.Tensor) -> bool:
    """x [N, C, H, W] is stored channels_last, as activations are in a model prepared so."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _stamp(weight: torch.Tensor) -> tuple:
    try:
        version = weight._version
    except RuntimeError:  # an inference tensor (made in inference mode) has none
        version = 0
    return weight.data_ptr(), version, weight.dtype, weight.shape


def _packed_weight(module: nn.Module, key: tuple,
                   pack: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The module's packed weight for `key`, made by `pack(plain weight)` when missing or
    stale; the plain weight is released once packed (`RELEASING`)."""
    with _LOCK:
        cache = _PACKS.get(module)
        if cache is None or cache[0] != _stamp(module.weight):
            cache = _PACKS[module] = (_stamp(module.weight), {})
        packs = cache[1]
        if key not in packs:
            packs[key] = pack(plain_weight(module))
        if RELEASING and type(module.weight) is nn.Parameter:
            _release(module, packs[key])
        return packs[key]


# --- one copy of each weight --------------------------------------------------------------------
#
# A packed weight holds the same numbers as the plain one, reordered (oneDNN's blocked
# layouts permute, and pad with zeros where a dimension is not a multiple of the block), so
# once a layer is packed its plain tensor is freed and remade from the packed copy, bit for
# bit, whenever something reads it.

# Tensor methods and properties that read no values: a released weight answers them itself.
_METADATA = frozenset({
    torch.Tensor.dtype.__get__, torch.Tensor.shape.__get__, torch.Tensor.device.__get__,
    torch.Tensor.requires_grad.__get__, torch.Tensor._version.__get__,
    torch.Tensor.is_meta.__get__, torch.Tensor.is_cuda.__get__, torch.Tensor.ndim.__get__,
    torch.Tensor.layout.__get__, torch.Tensor.grad.__get__, torch.Tensor.data_ptr,
    torch.Tensor.numel, torch.Tensor.element_size, torch.Tensor.dim, torch.Tensor.size,
    torch.Tensor.is_floating_point, torch.Tensor.__hash__})


class ReleasedParameter(nn.Parameter):
    """A layer's weight whose values only its packed copy holds (no storage of its own).

    Whatever reads its values (`state_dict`, `copy.deepcopy`, pickling, `.to()`, an
    optimizer, `requires_grad_`, a forward with autograd) first turns it back into the
    plain `nn.Parameter` it was, the same object, with the same values bit for bit and the
    same memory format; the next forward that packs it releases it again. Shape, dtype,
    device and the like are answered without restoring it.
    """

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        kwargs = kwargs or {}
        if func in _METADATA:
            return _disabled_torch_function_impl(func, types, args, kwargs)
        with _LOCK:
            for arg in pytree.tree_leaves((args, kwargs)):
                if isinstance(arg, ReleasedParameter):
                    _restore(arg)
            return func(*args, **kwargs)

    def __deepcopy__(self, memo: dict) -> nn.Parameter:
        with _LOCK:
            _restore(self)
            return self.__deepcopy__(memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        with _LOCK:
            _restore(self)
            return self.__reduce_ex__(protocol)


def _release(module: nn.Module, packed: torch.Tensor) -> None:
    """Free `module.weight`'s storage: its values live on in `packed` (lock held)."""
    weight = module.weight
    with torch.inference_mode(False):
        placeholder = torch.full((), math.nan, dtype=weight.dtype).expand(weight.shape)
    weight._glide_plain = (packed, weight.stride(), weakref.ref(module))  # noqa: SLF001
    weight.data = placeholder
    weight.__class__ = ReleasedParameter
    _PACKS[module] = (_stamp(weight), _PACKS[module][1])
    # The packed copies are rarely the size of the holes their plain weights leave in the
    # heap, which glibc keeps (glide_ui.heap.keep_heap): handed back at once, the first
    # forward's peak holds one layer twice, not many (measured on the full-size base in
    # fp32: peak RSS growth 1.12 x its weights, 1.16 x trimming every 16 MB released).
    heap.release_heap()


def _rebuilt(weight: torch.Tensor) -> torch.Tensor:
    """A fresh plain tensor with a released weight's values and strides."""
    packed, stride, _ = weight._glide_plain  # noqa: SLF001
    with torch.inference_mode(False), torch._C.DisableTorchFunctionSubclass():
        dense = packed.to_dense().view(weight.shape)
        if dense.stride() == stride:
            return dense
        return torch.empty_strided(weight.shape, stride, dtype=dense.dtype).copy_(dense)


def _restore(weight: ReleasedParameter) -> None:
    """Give a released weight its plain values back, in place (lock held)."""
    plain = _rebuilt(weight)
    module = weight._glide_plain[2]()  # noqa: SLF001
    weight.__class__ = nn.Parameter
    del weight._glide_plain  # noqa: SLF001
    weight.data = plain
    if module is not None and module in _PACKS:  # its packs still hold these values
        _PACKS[module] = (_stamp(weight), _PACKS[module][1])


def plain_weight(module: nn.Module) -> torch.Tensor:
    """`module.weight` with its values: the parameter itself, or, where it is released, a
    temporary plain copy rebuilt from the packed one (the layer stays released)."""
    weight = module.weight
    with _LOCK:
        return _rebuilt(weight) if isinstance(weight, ReleasedParameter) else weight


def conv2d(conv: nn.Conv2d, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """conv(x) (+ add); on the CPU without autograd in a prepacked dtype, channels_last
    inputs of at most `PACK_MAX_PIXELS` use a prepacked weight, and the addition is done
    by the convolution's own kernel, in float32 before its single rounding (saves a pass
    over the output at the large upsampler levels)."""
    if not (_packable(x, conv.weight) and _channels_last(x)) or conv.groups != 1:
        return _plus(conv(x), add)
    args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    if x.shape[0] * x.shape[2] * x.shape[3] <= PACK_MAX_PIXELS:
        weight = _packed_weight(conv, tuple(x.shape), lambda plain: torch.ops.mkldnn
                                ._reorder_convolution_weight(plain, *args, list(x.shape)))
    else:
        weight = plain_weight(conv)
        if add is None:
            return conv._conv_forward(x, weight, conv.bias)
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


def _matrix(weight: torch.Tensor) -> torch.Tensor:
    """A linear layer's weight [out, in], or a kernel-1 Conv1d's [out, in, 1] as one."""
    return weight if weight.dim() == 2 else weight[..., 0]


def linear(x: torch.Tensor, layer: nn.Linear | nn.Conv1d) -> torch.Tensor:
    """x [..., in] times the weight of `layer` (an nn.Linear, or a kernel-1 Conv1d applied
    token-major) plus its bias; on the CPU in bf16 without autograd, with a packed weight."""
    if not (_packable(x, layer.weight) and x.dtype == torch.bfloat16):  # fp32: MKL packs
        return F.linear(x, _matrix(layer.weight), layer.bias)
    packed = _packed_weight(layer, (), lambda plain: torch.ops.mkldnn._reorder_linear_weight(
        _matrix(plain).contiguous(), None))
    return torch.ops.mkldnn._linear_pointwise(x, packed, layer.bias, "none", [], "")


def _nbytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds (a oneDNN blocked tensor: with its padding)."""
    if tensor.is_mkldnn:
        return torch.ops.mkldnn._nbytes(tensor)
    return tensor.numel() * tensor.element_size()


def packed_bytes(model: nn.Module) -> int:
    """Bytes of the prepacked weight copies `model`'s layers hold (made on first use)."""
    total = 0
    for module in model.modules():
        cache = _PACKS.get(module)
        if cache is not None:
            total += sum(_nbytes(t) for t in cache[1].values())
    return total


def released_bytes(model: nn.Module) -> int:
    """Bytes of `model`'s weights whose plain tensors are released (held packed only)."""
    return sum(p.numel() * p.element_size() for p in model.parameters()
               if isinstance(p, ReleasedParameter))


def resident_bytes(model: nn.Module) -> int:
    """Bytes `model` holds now: its plain parameters and buffers (released weights left
    out) and its packed copies."""
    plain = sum(t.numel() * t.element_size()
                for t in itertools.chain(model.parameters(), model.buffers()))
    return plain - released_bytes(model) + packed_bytes(model)


def prepack_allowance(model: nn.Module, dtype: torch.dtype, device: torch.device) -> int:
    """Bytes beyond its weights that `model` will hold once it runs in `dtype` on
    `device`: 0 where nothing is packed or each packed weight replaces the plain one
    (`RELEASING`, the padding of a few narrow layers aside), else its convolution and
    linear weights (one input shape per layer). Known before any forward, even on the meta
    device, for budgets."""
    if RELEASING or not (PREPACKING and dtype in PREPACKED_DTYPES and device.type == "cpu"):
        return 0
    layers = (nn.Conv1d, nn.Conv2d, nn.Linear)
    return sum(m.weight.numel() * dtype.itemsize for m in model.modules()
               if isinstance(m, layers))
