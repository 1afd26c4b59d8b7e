"""LoRA adapters on a GLIDE UNet through peft, and the trainable state of either kind of run.

Targets are module-name suffixes (peft's `target_modules`): by default the attention
layers' `qkv`, `encoder_kv` and `proj_out` (kernel-1 Conv1d); with convs also the 3x3
convolutions of every residual block (`in_layers.2`, `out_layers.3`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glide_ui.errors import RequestError

ATTENTION_TARGETS = ("qkv", "encoder_kv", "proj_out")
CONV_TARGETS = ("in_layers.2", "out_layers.3")
_ADAPTER = "default"


def lora_targets(convs: bool) -> tuple[str, ...]:
    return ATTENTION_TARGETS + (CONV_TARGETS if convs else ())


def add_lora(model: nn.Module, rank: int, alpha: float, targets: Sequence[str],
             seed: int) -> nn.Module:
    """Wrap `model`'s target layers with LoRA (B = 0, so the model is unchanged at first)
    and freeze everything else. A-matrices are drawn from `seed`, not the global RNG
    stream (which is restored). Raises RequestError for a bad rank or targets."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise RequestError(f"The LoRA rank must be at least 1, got {rank}.")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0,
                        target_modules=list(targets), bias="none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            inject_adapter_in_model(config, model, adapter_name=_ADAPTER)
        except ValueError as error:
            raise RequestError(f"LoRA targets {list(targets)}: {error}") from None
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".lora_" in name)
    return model


def trainable_state(model: nn.Module, lora: bool) -> dict[str, torch.Tensor]:
    """What a run trains, named as a fine-tune file stores it: the LoRA matrices
    ("<module>.lora_A.weight", without peft's adapter name) or every weight."""
    state = model.state_dict()
    if not lora:
        return dict(state)
    tag = f".{_ADAPTER}."
    return {key.replace(tag, "."): value for key, value in state.items() if ".lora_" in key}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], lora: bool) -> None:
    """Put `trainable_state` back into `model` (exactly)."""
    own = model.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            if lora:
                module, _, part = key.partition(".lora_")
                key = f"{module}.lora_{part.replace('.', f'.{_ADAPTER}.', 1)}"
            own[key].copy_(value)
