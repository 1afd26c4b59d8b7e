"""Building blocks shared by the GLIDE networks.

Norms compute and return float32 whatever the module dtype (a bf16/fp16 model keeps its
statistics accurate); callers cast the result to the dtype of the next layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups and eps 1e-5, computed in float32 (returns float32)."""

    def __init__(self, channels: int) -> None:
        super().__init__(32, channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(),
                            self.eps)


class LayerNorm(nn.LayerNorm):
    """LayerNorm (eps 1e-5) computed in float32 (returns float32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(),
                            self.bias.float(), self.eps)


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
