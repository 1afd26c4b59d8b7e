"""What the robustness tests share when they drive the app's HTTP API."""

from __future__ import annotations

from pathlib import Path

from gradio_client import handle_file

FAST = {"steps": 2, "upsample": False}  # tiny models, two steps, no upsampler: ~1 s a request


def said(error: BaseException, limit: int = 90, verb: str = "refused") -> str:
    """`refused: '<the message>'` for the table (shortened)."""
    text = " ".join(str(error).split())
    return f"{verb}: '{text[:limit]}{'...' if len(text) > limit else ''}'"


def editor(background: Path | None, *layers: Path) -> dict:
    """The /inpaint `mask_editor` value: a picture and painted layers (transparent PNGs)."""
    return {"background": handle_file(str(background)) if background else None,
            "layers": [handle_file(str(layer)) for layer in layers], "composite": None}
