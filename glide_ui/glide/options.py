"""Option presets of the four GLIDE diffusion models and the noise-aware CLIP.

The full-size values are those of the official checkpoints (the reference defaults, with
`inpaint` / `super_res` set per model). The tiny presets keep the architecture (attention
placement, up/down res blocks, scale-shift norm, text padding and final LayerNorm, the
schedules) with small widths, so the whole app can run offline in tests.
"""

from __future__ import annotations

import math
from typing import Any

MODEL_NAMES = ("base", "upsample", "base-inpaint", "upsample-inpaint")

_BASE: dict[str, Any] = {
    "image_size": 64,
    "num_channels": 192,
    "num_res_blocks": 3,
    "channel_mult": "",
    "num_heads": 1,
    "num_head_channels": 64,
    "num_heads_upsample": -1,
    "attention_resolutions": "32,16,8",
    "dropout": 0.1,
    "text_ctx": 128,
    "xf_width": 512,
    "xf_layers": 16,
    "xf_heads": 8,
    "xf_final_ln": True,
    "xf_padding": True,
    "diffusion_steps": 1000,
    "noise_schedule": "squaredcos_cap_v2",
    "timestep_respacing": "",
    "use_scale_shift_norm": True,
    "resblock_updown": True,
    "use_fp16": True,
    "cache_text_emb": False,
    "inpaint": False,
    "super_res": False,
}

_UPSAMPLER = {"image_size": 256, "num_res_blocks": 2, "noise_schedule": "linear", "super_res": True}

_OVERRIDES: dict[str, dict[str, Any]] = {
    "base": {},
    "upsample": _UPSAMPLER,
    "base-inpaint": {"inpaint": True},
    "upsample-inpaint": {**_UPSAMPLER, "inpaint": True},
}

_TINY = {
    "num_channels": 32,
    "num_res_blocks": 1,
    "num_head_channels": 16,
    "xf_width": 32,
    "xf_layers": 2,
    "xf_heads": 2,
    "use_fp16": False,
}

_CLIP: dict[str, Any] = {
    "logit_scale": 100.0,
    "beta_schedule": "squaredcos_cap_v2",
    "n_timesteps": 1000,
    "image_size": 64,
    "patch_size": 4,
    "n_vocab": 65536,
    "max_text_len": 77,
    "n_embd": 512,
    "n_head_state_text": 64,
    "n_head_text": 8,
    "n_xf_blocks_text": 12,
    "n_head_state_image": 64,
    "n_head_image": 12,
    "n_xf_blocks_image": 12,
}

_TINY_CLIP = {
    "n_embd": 32,
    "n_head_state_text": 16,
    "n_head_text": 2,
    "n_xf_blocks_text": 2,
    "n_head_state_image": 16,
    "n_head_image": 2,
    "n_xf_blocks_image": 2,
}

# Channel multipliers the reference uses when `channel_mult` is "".
_DEFAULT_CHANNEL_MULT = {64: (1, 2, 3, 4), 128: (1, 1, 2, 3, 4), 256: (1, 1, 2, 2, 4, 4)}


def full_options(name: str) -> dict[str, Any]:
    """A fresh copy of the option dict of the official checkpoint `name`."""
    if name not in _OVERRIDES:
        raise ValueError(f"unknown GLIDE model {name!r}; expected one of {MODEL_NAMES}")
    return {**_BASE, **_OVERRIDES[name]}


def tiny_options(name: str) -> dict[str, Any]:
    """The architecture of `name` with small widths (fast on CPU, for tests)."""
    options = {**full_options(name), **_TINY}
    levels = int(math.log2(options["image_size"])) - 2
    options["channel_mult"] = ",".join(["1"] * levels)
    return options


def clip_config(tiny: bool = False) -> dict[str, Any]:
    """The noise-aware CLIP config: the official one, or a tiny one of the same layout."""
    return {**_CLIP, **(_TINY_CLIP if tiny else {})}


def parse_channel_mult(options: dict[str, Any]) -> tuple[int, ...]:
    """Width multiplier of each UNet level ("" = the reference default for the image size)."""
    image_size, spec = options["image_size"], options["channel_mult"]
    if spec == "":
        if image_size not in _DEFAULT_CHANNEL_MULT:
            raise ValueError(f"no default channel_mult for image_size {image_size}")
        return _DEFAULT_CHANNEL_MULT[image_size]
    mult = tuple(int(part) for part in spec.split(","))
    expected = int(math.log2(image_size)) - 2
    if len(mult) != expected:
        raise ValueError(f"channel_mult {spec!r} needs {expected} entries at {image_size} px")
    return mult


def parse_attention_resolutions(options: dict[str, Any]) -> tuple[int, ...]:
    """Downsample factors (image_size // resolution) of the levels that carry attention.

    Factors, not pixel sizes: an upsampler built for 256 px keeps its attention at the
    same levels when it runs on a smaller image.
    """
    spec = options["attention_resolutions"]
    if not spec:
        return ()
    return tuple(options["image_size"] // int(part) for part in spec.split(","))
