"""Producer for models/*.pt: the tiny reference weights loaded strictly, one forward pass
(in the contiguous layout, or channels_last: the app's CPU layout, which takes the
prepacked oneDNN kernels where the CPU has them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from glide_ui.glide.unet import create_model


def produce(rel: str, expected: dict[str, Any], ref_dir: Path,
            channels_last: bool = False) -> dict[str, Any]:
    model = create_model(expected["options"])
    model.load_state_dict(expected["state_dict"], strict=True)
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return {"output": model(**expected["inputs"])}
