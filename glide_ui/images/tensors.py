"""Pictures <-> model tensors: float [N, 3, H, W] in [-1, 1]; 8-bit value p <-> p / 127.5 - 1,
and the way back rounds like the reference (`((x + 1) * 127.5).round().clamp(0, 255)`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from glide_ui.images.decode import to_rgb


def pil_to_tensor(images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
    """RGB images of one size -> float32 [N, 3, H, W] in [-1, 1] (p / 127.5 - 1)."""
    if isinstance(images, Image.Image):
        images = [images]
    arrays = np.stack([np.asarray(to_rgb(image), dtype=np.uint8) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 levels, rounded as the reference does (half to even)."""
    return ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round `x` to the nearest 8-bit level and back to [-1, 1], as the reference does
    with the base sample before it conditions the upsampler."""
    return to_uint8(x).float() / 127.5 - 1.0


def tensor_to_pil(x: torch.Tensor) -> list[Image.Image]:
    """[N, 3, H, W] (or [3, H, W]) in [-1, 1] -> list of RGB images (rounded as `to_uint8`).

    On the CPU the arithmetic runs in numpy: the same float32 operations, so the same
    levels, but single-threaded, which is several times faster for a preview than torch's
    thread pool when the cores are busy sampling.
    """
    if x.dim() == 3:
        x = x[None]
    if x.device.type == "cpu":
        values = x.detach().float().numpy()
        levels = np.clip(np.round((values + 1) * 127.5), 0, 255).astype(np.uint8)
    else:
        levels = to_uint8(x).cpu().numpy()
    return [Image.fromarray(array) for array in np.ascontiguousarray(levels.transpose(0, 2, 3, 1))]
