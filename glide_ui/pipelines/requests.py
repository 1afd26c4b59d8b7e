"""Request dataclasses: one per pipeline, validated before any work starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

Sampler = Literal["ancestral", "ddim"]


@dataclass
class Text2ImRequest:
    prompt: str
    batch_size: int = 1
    seed: int = -1  # -1 draws one; image i uses seed + i
    guidance_scale: float = 3.0
    base_respacing: str = "100"
    sampler: Sampler = "ancestral"
    upsample: bool = True
    upsample_respacing: str = "fast27"
    upsample_temp: float = 0.997
    preview_interval: float = 0.5  # seconds between previews; first and last always shown
    preview_noisy: bool = False


@dataclass
class ClipGuidedRequest:
    prompt: str
    batch_size: int = 1
    seed: int = -1
    clip_source: Literal["glide", "openai"] = "glide"  # noise-aware CLIP or OpenAI CLIP
    clip_scale: float = 3.0
    openai_clip_model: str = "ViT-B/32"
    base_respacing: str = "100"
    sampler: Sampler = "ancestral"
    upsample: bool = True
    upsample_respacing: str = "fast27"
    upsample_temp: float = 0.997
    preview_interval: float = 0.5
    preview_noisy: bool = False


@dataclass
class InpaintRequest:
    image: Image.Image
    mask: np.ndarray  # bool [H, W] at the image's size, True = repaint
    prompt: str
    batch_size: int = 1
    seed: int = -1
    guidance_scale: float = 5.0
    base_respacing: str = "100"
    sampler: Sampler = "ancestral"
    upsample: bool = True
    upsample_respacing: str = "fast27"
    upsample_temp: float = 0.997
    mask_grow: int = 0  # pixels (at the image's size) added around the painted region
    mask_feather: int = 8  # pixels of soft edge when pasting back into a large image
    preview_interval: float = 0.5
    preview_noisy: bool = False
