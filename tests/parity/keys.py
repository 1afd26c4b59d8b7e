"""Producer for keys/*: state-dict layouts of the full-size networks and their options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from glide_ui.glide.options import MODEL_NAMES, clip_config, full_options
from glide_ui.glide.unet import create_model


def _build(stem: str) -> nn.Module:
    if stem in MODEL_NAMES:
        return create_model(full_options(stem))
    if stem == "clip-image-enc":
        from glide_ui.glide.clip import ImageEncoder

        return ImageEncoder(clip_config())
    if stem == "clip-text-enc":
        from glide_ui.glide.clip import TextEncoder

        return TextEncoder(clip_config())
    raise LookupError(f"no network for key list {stem!r}")


def produce(rel: str, expected: Any, ref_dir: Path) -> Any:
    path = Path(rel)
    if path.suffix == ".json":
        return {**{name: full_options(name) for name in MODEL_NAMES}, "clip": clip_config()}
    with torch.device("meta"):
        model = _build(path.stem)
    return [(key, list(value.shape)) for key, value in model.state_dict().items()]
