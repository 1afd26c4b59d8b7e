"""GLIDE's noise-aware CLIP: image encoder (conditioned on the timestep), text encoder, and
the guidance gradient.

Module and parameter names reproduce the official `clip_image_enc` / `clip_text_enc`
state dicts (`blocks.input.w_t`, `blocks.block_0.f_attn.f_q.w`, ...). Norms run in
float32 and the residual stream stays float32; projections run in the weights' dtype, so
a bf16/fp16 copy works with float32 statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .clip_tokenizer import get_clip_tokenizer
from .nn import attention, merge_heads, split_heads

# Per-channel pixel statistics (0..255 scale) of the original CLIP training data.
PIXEL_MEANS = (122.77093945, 116.74601272, 104.09373519)
PIXEL_STDS = (68.50053285, 66.63215831, 70.32316309)
LN_EPS = 1e-5
NORM_EPS = 1e-12


class LayerNorm(nn.Module):
    """LayerNorm with parameters `g`, `b`; computed in and returning float32."""

    def __init__(self, n_state: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(n_state))
        self.b = nn.Parameter(torch.zeros(n_state))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.g.shape, self.g.float(), self.b.float(), LN_EPS)


class Affine(nn.Module):
    """x @ w^T (+ b), `w` of shape [n_out, n_in]; runs in the dtype of `w`."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_out, n_in) * n_in**-0.5)
        self.b = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.w.dtype), self.w, self.b)


class AttentionResblock(nn.Module):
    """Pre-LN multi-head self-attention; the key projection has no bias."""

    def __init__(self, n_state: int, n_head: int, causal: bool) -> None:
        super().__init__()
        self.n_head, self.causal = n_head, causal
        self.ln = LayerNorm(n_state)
        self.f_q = Affine(n_state, n_state)
        self.f_k = Affine(n_state, n_state, bias=False)
        self.f_v = Affine(n_state, n_state)
        self.f_c = Affine(n_state, n_state)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        r = self.ln(m)
        (q,), (k,), (v,) = (split_heads(f(r), self.n_head, 1) for f in (self.f_q, self.f_k,
                                                                         self.f_v))
        return m + self.f_c(merge_heads(attention(q, k, v, causal=self.causal)))


class FullyConnectedResblock(nn.Module):
    """Pre-LN MLP, 4x wide, exact GELU."""

    def __init__(self, n_state: int) -> None:
        super().__init__()
        self.ln = LayerNorm(n_state)
        self.f_1 = Affine(n_state, 4 * n_state)
        self.f_2 = Affine(4 * n_state, n_state)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return m + self.f_2(F.gelu(self.f_1(self.ln(m))))


class TransformerBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int, causal: bool) -> None:
        super().__init__()
        self.f_attn = AttentionResblock(n_state, n_head, causal)
        self.f_mlp = FullyConnectedResblock(n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f_mlp(self.f_attn(x))


class FeatureHead(nn.Module):
    """LN of one sequence position, projected to the joint embedding (no bias)."""

    def __init__(self, n_state: int, n_embd: int) -> None:
        super().__init__()
        self.ln = LayerNorm(n_state)
        self.f = Affine(n_state, n_embd, bias=False)

    def forward(self, h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        picked = h[torch.arange(h.shape[0], device=h.device), index]
        return self.f(self.ln(picked))


class ImageEmbedding(nn.Module):
    """Patches (conv without bias) behind a timestep token, plus positions, then LN."""

    def __init__(self, image_size: int, patch_size: int, n_state: int, n_timesteps: int) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of {patch_size}")
        n_patch = (image_size // patch_size) ** 2
        self.image_size, self.patch_size = image_size, patch_size
        self.w_t = nn.Parameter(torch.randn(n_timesteps, n_state) * n_state**-0.5)
        self.patch_proj = nn.Parameter(
            torch.randn(n_state, 3, patch_size, patch_size) * (3 * patch_size**2) ** -0.5)
        self.w_pos = nn.Parameter(torch.randn(1 + n_patch, n_state) * n_state**-0.5)
        self.ln = LayerNorm(n_state)

    def forward(self, pixels: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        size = (self.image_size, self.image_size)
        if pixels.ndim != 4 or pixels.shape[1] != 3 or tuple(pixels.shape[2:]) != size:
            raise ValueError(f"expected images [N, 3, {size[0]}, {size[1]}], got "
                             f"{tuple(pixels.shape)}")
        if t.shape != pixels.shape[:1]:
            raise ValueError(f"expected one timestep per image, got shape {tuple(t.shape)}")
        mean, std = (torch.tensor(c, dtype=torch.float32, device=pixels.device)[:, None, None]
                     for c in (PIXEL_MEANS, PIXEL_STDS))
        x = ((pixels.float() - mean) / std).to(self.patch_proj.dtype)
        x = F.conv2d(x, self.patch_proj, stride=self.patch_size).flatten(2).transpose(1, 2)
        x = torch.cat([F.embedding(t, self.w_t)[:, None], x], dim=1)
        return self.ln(x + self.w_pos)


class TextEmbedding(nn.Module):
    """Token plus position embeddings."""

    def __init__(self, n_vocab: int, n_context: int, n_state: int) -> None:
        super().__init__()
        self.w_voc = nn.Parameter(torch.randn(n_vocab, n_state) * 0.02)
        self.w_pos = nn.Parameter(torch.randn(n_context, n_state) * 0.01)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.shape[1] > self.w_pos.shape[0]:
            raise ValueError(f"expected tokens [N, <= {self.w_pos.shape[0]}], got "
                             f"{tuple(tokens.shape)}")
        return F.embedding(tokens, self.w_voc) + self.w_pos[: tokens.shape[1]]


def _blocks(embedding: nn.Module, n_state: int, n_head: int, n_blocks: int, n_embd: int,
            causal: bool) -> nn.ModuleDict:
    layers = {"input": embedding}
    layers.update({f"block_{i}": TransformerBlock(n_state, n_head, causal)
                   for i in range(n_blocks)})
    layers["output"] = FeatureHead(n_state, n_embd)
    return nn.ModuleDict(layers)


class ImageEncoder(nn.Module):
    """Noise-aware ViT: pixels in 0..255 and ORIGINAL timesteps -> [N, n_embd] (unnormalised)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.n_state = config["n_head_image"] * config["n_head_state_image"]
        self.n_blocks = config["n_xf_blocks_image"]
        embedding = ImageEmbedding(config["image_size"], config["patch_size"], self.n_state,
                                   config["n_timesteps"])
        self.blocks = _blocks(embedding, self.n_state, config["n_head_image"], self.n_blocks,
                              config["n_embd"], causal=False)

    def forward(self, pixels: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.blocks["input"](pixels, t)
        for i in range(self.n_blocks):
            h = self.blocks[f"block_{i}"](h)
        first = torch.zeros(h.shape[0], dtype=torch.long, device=h.device)
        return self.blocks["output"](h, first)


class TextEncoder(nn.Module):
    """Causal text transformer: padded CLIP tokens and lengths -> [N, n_embd] (unnormalised)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.n_state = config["n_head_text"] * config["n_head_state_text"]
        self.n_blocks = config["n_xf_blocks_text"]
        self.max_text_len = config["max_text_len"]
        embedding = TextEmbedding(config["n_vocab"], self.max_text_len, self.n_state)
        self.blocks = _blocks(embedding, self.n_state, config["n_head_text"], self.n_blocks,
                              config["n_embd"], causal=True)

    def forward(self, tokens: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        h = self.blocks["input"](tokens)
        for i in range(self.n_blocks):
            h = self.blocks[f"block_{i}"](h)
        return self.blocks["output"](h, lens - 1)


def normalize(z: torch.Tensor) -> torch.Tensor:
    """z / (||z|| + 1e-12) along the last axis, in float32."""
    z = z.float()
    return z / (torch.linalg.vector_norm(z, dim=-1, keepdim=True) + NORM_EPS)


def encode_prompts(prompts: Sequence[str], device: torch.device | str | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP token rows [N, 77] and lengths [N] (LongTensors) for the text encoder."""
    tokenizer = get_clip_tokenizer()
    rows = [tokenizer.tokenize(prompt) for prompt in prompts]
    tokens = torch.tensor([row.tokens for row in rows], dtype=torch.long, device=device)
    lens = torch.tensor([row.length for row in rows], dtype=torch.long, device=device)
    return tokens, lens


class NoiseAwareClip(nn.Module):
    """The two encoders plus the scaled similarity whose gradient guides sampling."""

    def __init__(self, image_encoder: ImageEncoder, text_encoder: TextEncoder,
                 logit_scale: float = 100.0) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.logit_scale = logit_scale

    def image_embeddings(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Unit embeddings [N, n_embd] of images x in [-1, 1] at ORIGINAL timesteps t."""
        return normalize(self.image_encoder((x + 1) * 127.5, t))

    def text_embeddings(self, tokens: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Unit embeddings [N, n_embd] of padded CLIP tokens with their lengths."""
        return normalize(self.text_encoder(tokens, lens))

    def prompt_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        device = self.text_encoder.blocks["input"].w_voc.device
        return self.text_embeddings(*encode_prompts(prompts, device))

    def cond_gradient(self, x_t: torch.Tensor, t: torch.Tensor, text_embedding: torch.Tensor,
                      grad_scale: float) -> torch.Tensor:
        """grad_scale * d/dx_t [logit_scale * sum(text_embedding * image_embeddings(x_t, t))].

        The text embedding is held constant; the result has x_t's shape and dtype.
        """
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            similarity = (text_embedding.detach() * self.image_embeddings(x, t)).sum()
            (grad,) = torch.autograd.grad(self.logit_scale * similarity, x)
        return grad * grad_scale
