"""Producer for models/*.pt: the tiny reference weights loaded strictly, one forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glide_ui.glide.unet import create_model


def produce(rel: str, expected: dict[str, Any], ref_dir: Path) -> dict[str, Any]:
    model = create_model(expected["options"])
    model.load_state_dict(expected["state_dict"], strict=True)
    model.eval()
    return {"output": model(**expected["inputs"])}
