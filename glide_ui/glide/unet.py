"""The text-conditional GLIDE UNet and its super-resolution / inpainting variants.

Module names and shapes follow the official checkpoints, so they load unchanged. One class
covers the four models; `options["super_res"]` and `options["inpaint"]` decide which extra
images enter the first convolution.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .nn import (
    GroupNorm32,
    attention,
    conv2d,
    group_norm_as_input,
    linear,
    merge_heads,
    norm_silu,
    split_heads,
    timestep_embedding,
)
from .options import parse_attention_resolutions, parse_channel_mult
from .text import TextCondition, TextEncoderMixin

OUT_CHANNELS = 6  # eps (3) + variance value v (3)


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


def _pointwise(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A kernel-1 Conv1d applied to token-major x [B, T, C_in] -> [B, T, C_out].

    A wrapped layer (a training adapter, e.g. peft's LoRA) runs its own forward."""
    if type(conv) is not nn.Conv1d:
        return conv(x.transpose(1, 2)).transpose(1, 2)
    return linear(x, conv)


def _resample(x: torch.Tensor, direction: str | None) -> torch.Tensor:
    if direction == "up":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    if direction == "down":
        return F.avg_pool2d(x, kernel_size=2, stride=2)
    return x


class ResBlock(nn.Module):
    """Residual block with scale-shift conditioning on the embedding, optionally resampling
    (nearest x2 up / 2x2 average-pool down, between the first norm and conv)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, dropout: float,
                 resample: str | None = None) -> None:
        super().__init__()
        self.resample = resample
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), _conv3x3(channels, out_channels))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(dropout),
            _conv3x3(out_channels, out_channels))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        norm, _, conv = self.in_layers
        h = conv2d(conv, _resample(norm_silu(norm, x), self.resample))
        x = _resample(x, self.resample)
        act, dense = self.emb_layers
        scale_shift = linear(act(emb), dense)
        scale, shift = scale_shift[..., None, None].chunk(2, dim=1)
        norm, _, dropout, conv = self.out_layers
        skip = self.skip_connection
        residual = x if isinstance(skip, nn.Identity) else conv2d(skip, x)
        return conv2d(conv, dropout(norm_silu(norm, h, scale, shift)), add=residual)


class AttentionBlock(nn.Module):
    """Spatial self-attention whose keys/values also include the text tokens (text first,
    one softmax over both)."""

    def __init__(self, channels: int, heads: int, encoder_channels: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.encoder_kv = nn.Conv1d(encoder_channels, 2 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, xf_out: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = group_norm_as_input(self.norm, x).flatten(2).transpose(1, 2)
        q, k, v = split_heads(_pointwise(self.qkv, h), self.heads, 3)
        text_k, text_v = split_heads(_pointwise(self.encoder_kv, xf_out), self.heads, 2)
        h = attention(q, torch.cat([text_k, k], dim=2), torch.cat([text_v, v], dim=2))
        h = _pointwise(self.proj_out, merge_heads(h))
        return x + h.transpose(1, 2).reshape(batch, channels, height, width)


class Blocks(nn.Sequential):
    """A sequence of layers, each given what it needs: the embedding, the text, or neither."""

    def forward(self, h: torch.Tensor, emb: torch.Tensor, xf_out: torch.Tensor) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, AttentionBlock):
                h = layer(h, xf_out)
            else:
                h = conv2d(layer, h)
        return h


class _Builder:
    """Creates the blocks of one UNet from its options (heads and attention placement)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.emb_channels = 4 * options["num_channels"]
        self.attention_ds = parse_attention_resolutions(options)

    def res(self, channels: int, out_channels: int, resample: str | None = None) -> ResBlock:
        return ResBlock(channels, self.emb_channels, out_channels, self.options["dropout"],
                        resample)

    def attn(self, channels: int, upsampling: bool = False) -> AttentionBlock:
        head_channels = self.options["num_head_channels"]
        if head_channels != -1:
            heads = channels // head_channels
        elif upsampling and self.options["num_heads_upsample"] != -1:
            heads = self.options["num_heads_upsample"]
        else:
            heads = self.options["num_heads"]
        return AttentionBlock(channels, heads, self.options["xf_width"])

    def has_attention(self, ds: int) -> bool:
        return ds in self.attention_ds


def _check_supported(options: dict[str, Any]) -> None:
    # Every official GLIDE model uses these; other values change the layer layout.
    required = {"use_scale_shift_norm": True, "resblock_updown": True}
    for key, value in required.items():
        if options[key] != value:
            raise ValueError(f"unsupported option {key}={options[key]!r} (GLIDE uses {value!r})")
    if options["xf_width"] <= 0:
        raise ValueError("only text-conditional models are supported (xf_width > 0)")


class Text2ImUNet(TextEncoderMixin, nn.Module):
    """GLIDE's text-conditional UNet; super-res and inpainting inputs per the options.

    forward returns float32 [N, 6, H, W] (eps | variance value) whatever the module dtype.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__()
        _check_supported(options)
        self.options = dict(options)
        self.super_res = bool(options["super_res"])
        self.inpaint = bool(options["inpaint"])
        channels = options["num_channels"]
        build = _Builder(options)
        self.time_embed = nn.Sequential(nn.Linear(channels, build.emb_channels), nn.SiLU(),
                                        nn.Linear(build.emb_channels, build.emb_channels))
        mult = parse_channel_mult(options)
        self.input_blocks, skips = self._encoder(build, mult)
        top = channels * mult[-1]
        self.middle_block = Blocks(build.res(top, top), build.attn(top), build.res(top, top))
        self.output_blocks = self._decoder(build, mult, skips)
        first = channels * mult[0]
        self.out = nn.Sequential(GroupNorm32(first), nn.SiLU(), _conv3x3(first, OUT_CHANNELS))
        self.init_text_encoder(options, build.emb_channels)

    @property
    def in_channels(self) -> int:
        return 3 + 3 * self.super_res + 4 * self.inpaint

    @property
    def dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    def _encoder(self, build: _Builder, mult: tuple[int, ...]) -> tuple[nn.ModuleList, list[int]]:
        ch = self.options["num_channels"] * mult[0]
        blocks = [Blocks(_conv3x3(self.in_channels, ch))]
        skips, ds = [ch], 1
        for level, m in enumerate(mult):
            for _ in range(self.options["num_res_blocks"]):
                out = self.options["num_channels"] * m
                layers = [build.res(ch, out)]
                if build.has_attention(ds):
                    layers.append(build.attn(out))
                blocks.append(Blocks(*layers))
                ch = out
                skips.append(ch)
            if level != len(mult) - 1:
                blocks.append(Blocks(build.res(ch, ch, "down")))
                skips.append(ch)
                ds *= 2
        return nn.ModuleList(blocks), skips

    def _decoder(self, build: _Builder, mult: tuple[int, ...], skips: list[int]) -> nn.ModuleList:
        skips = list(skips)
        ch = self.options["num_channels"] * mult[-1]
        ds = 2 ** (len(mult) - 1)
        blocks = []
        for level in reversed(range(len(mult))):
            for i in range(self.options["num_res_blocks"] + 1):
                out = self.options["num_channels"] * mult[level]
                layers = [build.res(ch + skips.pop(), out)]
                ch = out
                if build.has_attention(ds):
                    layers.append(build.attn(ch, upsampling=True))
                if level and i == self.options["num_res_blocks"]:
                    layers.append(build.res(ch, ch, "up"))
                    ds //= 2
                blocks.append(Blocks(*layers))
        return nn.ModuleList(blocks)

    def _input_image(self, x: torch.Tensor, low_res: torch.Tensor | None,
                     inpaint_image: torch.Tensor | None,
                     inpaint_mask: torch.Tensor | None) -> torch.Tensor:
        parts = [x]
        if self.inpaint:
            image = torch.zeros_like(x) if inpaint_image is None else inpaint_image
            mask = torch.zeros_like(x[:, :1]) if inpaint_mask is None else inpaint_mask
            parts += [image * mask, mask]
        if self.super_res:
            if low_res is None:
                raise ValueError("the upsampler needs low_res")
            parts.append(F.interpolate(low_res, x.shape[-2:], mode="bilinear",
                                       align_corners=False))
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor,
                tokens: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                text: TextCondition | None = None, low_res: torch.Tensor | None = None,
                inpaint_image: torch.Tensor | None = None,
                inpaint_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predict [eps | v] for x [N, 3, H, W] at ORIGINAL timesteps [N].

        Pass either `tokens` and `mask` or `text` (from `encode_text`, computed once).
        """
        if text is None:
            if tokens is None:
                raise ValueError("pass tokens (and mask) or a precomputed text condition")
            text = self.encode_text(tokens, mask)
        dtype = self.dtype
        emb = timestep_embedding(timesteps, self.options["num_channels"]).to(dtype)
        emb = self.time_embed(emb) + text.emb.to(dtype)
        xf_out = text.xf_out.to(dtype)
        h = self._input_image(x, low_res, inpaint_image, inpaint_mask).to(dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb, xf_out)
            skips.append(h)
        h = self.middle_block(h, emb, xf_out)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, xf_out)
        norm, _, conv = self.out
        return conv2d(conv, norm_silu(norm, h)).float()


def create_model(options: dict[str, Any]) -> Text2ImUNet:
    """Build the GLIDE UNet described by `options` (works under `torch.device("meta")`)."""
    return Text2ImUNet(options)
