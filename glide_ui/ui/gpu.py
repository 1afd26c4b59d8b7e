"""`@spaces.GPU` on Hugging Face ZeroGPU Spaces; a no-op everywhere else."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def on_gpu(handler: F) -> F:
    """Ask a ZeroGPU Space for a GPU while `handler` runs (when the `spaces` package exists)."""
    try:
        import spaces
    except ImportError:
        return handler
    return spaces.GPU(handler)
