"""The Gradio page: one module per tab plus shared widgets. No torch here."""

from glide_ui.ui.backend import Backend
from glide_ui.ui.page import build_demo

__all__ = ["Backend", "build_demo"]
