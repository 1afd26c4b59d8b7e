"""Building the networks: their options, tiny models with seeded random weights, the
OpenAI CLIP files, and a built model made ready for its compute path."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from glide_ui import checkpoints as ckpt
from glide_ui.compute import ComputePath
from glide_ui.glide.options import MODEL_NAMES, clip_config, full_options, tiny_options

CLIP_ENCODERS = ("clip/image-enc", "clip/text-enc")
NAMES = (*MODEL_NAMES, *CLIP_ENCODERS, *ckpt.OPENAI_CLIP_NAMES)


def model_options(name: str, tiny: bool) -> dict[str, Any]:
    """The options a model is built from (for recipes and for building it)."""
    if name in MODEL_NAMES:
        return tiny_options(name) if tiny else full_options(name)
    if name in CLIP_ENCODERS:
        return clip_config(tiny)
    return {"openai_clip": name, "tiny": tiny}


def build_network(name: str, options: dict[str, Any]) -> nn.Module:
    """A GLIDE network or noise-aware CLIP encoder (on the current default device)."""
    if name in MODEL_NAMES:
        from glide_ui.glide.unet import create_model

        return create_model(options)
    from glide_ui.glide.clip import ImageEncoder, TextEncoder

    return ImageEncoder(options) if name == "clip/image-enc" else TextEncoder(options)


def tiny_seed(name: str) -> int:
    return NAMES.index(name)


_CHUNK = 1 << 21  # values of noise made at once while randomizing (8 MiB in float32)


def _randomize(model: nn.Module, seed: int) -> None:
    """Seeded weights with no zero tensor (as the reference fixtures' tiny models have):
    matrices N(0, 1/fan_in), norm gains 1 + 0.2 N, other vectors 0.1 N.

    Made a few rows at a time where a row is a multiple of 16 values: torch draws normal
    values 16 at a time, so the values are those of one draw per tensor, and no float32
    copy of a large tensor is ever made."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            for rows in _row_chunks(tensor):
                noise = torch.randn(rows.shape, generator=generator, dtype=torch.float32)
                if tensor.dim() >= 2:
                    noise.div_(tensor[0].numel() ** 0.5)
                elif key.endswith(("weight", ".g")):  # norm gains ("g" in the CLIP encoders)
                    noise.mul_(0.2).add_(1)
                else:
                    noise.mul_(0.1)
                if noise.dim() == 4 and rows.is_contiguous(memory_format=torch.channels_last):
                    noise = noise.contiguous(memory_format=torch.channels_last)  # fast copy
                rows.copy_(noise)


def _row_chunks(tensor: torch.Tensor) -> list[torch.Tensor]:
    """`tensor` as consecutive blocks of whole rows of about `_CHUNK` values, where its
    rows are a multiple of 16 values (else whole)."""
    row = tensor[0].numel() if tensor.dim() >= 2 else 0
    if not row or row % 16 or tensor.numel() <= _CHUNK:
        return [tensor]
    return list(tensor.split(max(1, _CHUNK // row)))


def build_tiny(name: str, options: dict[str, Any], path: ComputePath) -> nn.Module:
    seed = tiny_seed(name)
    if name in ckpt.OPENAI_CLIP_NAMES:
        from glide_ui.openai_clip import tiny_openai_clip

        return tiny_openai_clip(seed)
    # Built on meta and filled from our own generator: no default init, no global RNG use.
    # Allocated in the path's dtype and memory format (the float32 values rounded as
    # `.to(dtype)` would round them): no second copy of any weight is ever made.
    with ckpt.meta_device():
        model = build_network(name, options).to(path.dtype)
        if path.channels_last:
            model.to(memory_format=torch.channels_last)
    model = model.to_empty(device="cpu")
    _randomize(model, seed)
    return model


def prepare(model: nn.Module, path: ComputePath) -> nn.Module:
    model = model.to(device=path.device, dtype=path.dtype)
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):  # OpenAI CLIP's LayerNorm runs in fp32
            module.float()
    if path.channels_last:
        # oneDNN's CPU convolutions work in NHWC: with NCHW weights every convolution
        # converts its input and output, and only NHWC models take the prepacked path.
        model.to(memory_format=torch.channels_last)
    model.eval()
    model.requires_grad_(False)
    return model


def load_openai_clip(path: Path) -> nn.Module:
    """An OpenAIClip from an official TorchScript file (its sha256 already checked)."""
    from glide_ui.openai_clip import OpenAIClip, build_openai_clip, load_jit_or_state_dict

    try:
        state = load_jit_or_state_dict(path)
    except (RuntimeError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise ckpt.CorruptCheckpointError(f"{path} is truncated or corrupt: {error}") from error
    return OpenAIClip(build_openai_clip(state))
