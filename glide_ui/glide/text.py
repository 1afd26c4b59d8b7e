"""GLIDE's text transformer and the text conditioning it gives the UNet.

The official checkpoints keep the text encoder's weights at the top level of the UNet's
state dict (`token_embedding`, `positional_embedding`, `padding_embedding`,
`transformer.resblocks.*`, `final_ln`, `transformer_proj`), so the UNet takes them on
through `TextEncoderMixin` rather than owning a child module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .nn import LayerNorm, attention, merge_heads, split_heads

N_VOCAB = 50257  # GPT-2 BPE; the last entry (50256) is the padding token


@dataclass(frozen=True)
class TextCondition:
    """The text conditioning of one batch, computed once per request.

    emb:    [N, time-embedding width], added to the timestep embedding.
    xf_out: [N, text_ctx, xf_width], the per-token outputs every attention block attends to.
    """

    emb: torch.Tensor
    xf_out: torch.Tensor


class _SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.c_qkv = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = split_heads(self.c_qkv(x), self.heads, 3)
        return self.c_proj(merge_heads(attention(q, k, v)))


class _MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = _SelfAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = _MLP(width)
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x).to(x.dtype))
        return x + self.mlp(self.ln_2(x).to(x.dtype))


class Transformer(nn.Module):
    """A stack of blocks with full (unmasked) self-attention."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class TextEncoderMixin:
    """Gives an nn.Module GLIDE's text encoder under the checkpoint's top-level names."""

    def init_text_encoder(self, options: dict[str, Any], emb_channels: int) -> None:
        ctx, width = options["text_ctx"], options["xf_width"]
        self.transformer = Transformer(width, options["xf_layers"], options["xf_heads"])
        self.final_ln = LayerNorm(width) if options["xf_final_ln"] else None
        self.token_embedding = nn.Embedding(N_VOCAB, width)
        self.transformer_proj = nn.Linear(width, emb_channels)
        self.positional_embedding = nn.Parameter(torch.empty(ctx, width))
        nn.init.normal_(self.positional_embedding, std=0.01)
        self.padding_embedding = None
        if options["xf_padding"]:
            self.padding_embedding = nn.Parameter(torch.empty(ctx, width))
            nn.init.normal_(self.padding_embedding, std=0.01)

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> TextCondition:
        """Text conditioning of `tokens` [N, text_ctx] (mask: True = real token)."""
        x = self.token_embedding(tokens) + self.positional_embedding
        if self.padding_embedding is not None:
            if mask is None:
                raise ValueError("this model pads the text: pass the token mask")
            x = torch.where(mask.bool()[..., None], x, self.padding_embedding)
        x = self.transformer(x)
        if self.final_ln is not None:
            x = self.final_ln(x).to(self.token_embedding.weight.dtype)
        # The pooled vector is the LAST position whatever the mask (usually padding).
        return TextCondition(emb=self.transformer_proj(x[:, -1]), xf_out=x)
