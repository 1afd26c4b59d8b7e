"""The precision and optimizer a fine-tuning run's settings choose, by capability."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glide_ui.errors import RequestError
from glide_ui.training.config import TrainConfig


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: an autocast dtype (None: float32) and loss scaling."""

    name: str
    autocast: torch.dtype | None
    scaled: bool  # fp16: scale the loss so small gradients do not underflow


def choose_precision(requested: str, device_type: str, bf16_ok: bool) -> Precision:
    """"auto": bf16 where the hardware computes it (a CPU with AVX512-BF16/AMX, a recent
    GPU), else fp16 with loss scaling on CUDA, else float32. Raises RequestError for bf16
    asked where it is not computed natively."""
    if requested == "auto":
        requested = "bf16" if bf16_ok else ("fp16" if device_type == "cuda" else "fp32")
    if requested == "bf16" and not bf16_ok:
        raise RequestError(f"This {device_type} does not compute in bf16; use fp32"
                           f"{' or fp16' if device_type == 'cuda' else ''}.")
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    return Precision(requested, dtypes[requested], requested == "fp16")


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def make_optimizer(parameters: list[torch.nn.Parameter], config: TrainConfig,
                   device: torch.device) -> torch.optim.Optimizer:
    """AdamW, or bitsandbytes' 8-bit AdamW on CUDA. Raises RequestError where it cannot."""
    if config.optimizer == "adamw8bit":
        if device.type != "cuda":
            raise RequestError("8-bit AdamW (bitsandbytes) runs on CUDA only; use the "
                               "adamw optimizer on this machine.")
        try:
            import bitsandbytes
        except ImportError:
            raise RequestError("8-bit AdamW needs the bitsandbytes package: "
                               "pip install bitsandbytes") from None
        return bitsandbytes.optim.AdamW8bit(parameters, lr=config.lr,
                                            weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
