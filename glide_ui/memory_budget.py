"""The memory budget of the loaded models: sizes as people write them, the default share
of the machine, and what a model's weights take."""

from __future__ import annotations

import itertools
import os
import re

import psutil
import torch
from torch import nn

from glide_ui.errors import GlideUIError

MEMORY_ENV = "GLIDE_MAX_MEMORY"

# Share of the machine's memory the weights may take by default; the rest is left for
# activations, the app and the operating system.
_DEFAULT_BUDGET_SHARE = {"cuda": 0.7, "cpu": 0.75}


def parse_memory(text: str | int) -> int:
    """Bytes from 123, "8GB", "1.5 GiB", "512M" (K/M/G/T: powers of 1000, Ki/Mi/Gi/Ti: 1024)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?)b?|b)?\s*", text, re.IGNORECASE)
    if not match:
        raise GlideUIError(f"Cannot read {text!r} as a memory size; write e.g. 8GB or 6GiB.")
    number, unit, binary = match.groups()
    power = "kmgt".index(unit.lower()) + 1 if unit else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


def default_budget(device: torch.device) -> int:
    """GLIDE_MAX_MEMORY when set, else a share of the device's memory."""
    if os.environ.get(MEMORY_ENV):
        return parse_memory(os.environ[MEMORY_ENV])
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = psutil.virtual_memory().total
    return int(total * _DEFAULT_BUDGET_SHARE.get(device.type, 0.75))


def model_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers."""
    return sum(t.numel() * t.element_size()
               for t in itertools.chain(model.parameters(), model.buffers()))


def bytes_as(model: nn.Module, dtype: torch.dtype) -> int:
    """Bytes `model` will take once its floating-point tensors are cast to `dtype`."""
    size = torch.empty((), dtype=dtype).element_size()
    return sum(t.numel() * (size if t.is_floating_point() else t.element_size())
               for t in itertools.chain(model.parameters(), model.buffers()))


def format_bytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
