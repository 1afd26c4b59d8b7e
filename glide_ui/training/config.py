"""A fine-tuning run's settings and their checks (no torch: the CLI reads its defaults)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from glide_ui.errors import RequestError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
FITS = ("crop", "resize")
OPTIMIZERS = ("adamw", "adamw8bit")

# Settings that do not change the weights a run makes: a resume may change them.
_FREE = ("steps", "resume", "checkpoint_every", "sample_every", "sample_prompts",
         "sample_seeds", "sample_steps", "guidance_scale", "out", "models", "checkpoints")


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run. `lora_rank` 0 fine-tunes every weight; `batch_size` is the
    micro-batch, `batch_size * accumulate` the batch of one optimizer step."""

    data: str
    out: str
    model: str = "base"
    steps: int = 200
    batch_size: int = 4
    accumulate: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    lora_rank: int = 8
    lora_alpha: float | None = None  # default: the rank (scaling 1)
    lora_convs: bool = False
    caption_dropout: float = 0.2
    precision: str = "auto"
    optimizer: str = "adamw"
    grad_checkpointing: bool = False
    checkpoint_every: int = 100
    sample_every: int = 0  # 0: samples only before and after
    sample_prompts: tuple[str, ...] = ()  # default: the first two captions
    sample_seeds: tuple[int, ...] = (0,)
    sample_steps: int = 25
    guidance_scale: float = 3.0
    seed: int = 0
    resume: bool = False
    fit: str = "crop"
    flip: bool = False
    models: str = "official"
    checkpoints: str | None = None
    device: str | None = None

    @property
    def lora(self) -> bool:
        return self.lora_rank > 0

    @property
    def alpha(self) -> float:
        return float(self.lora_rank if self.lora_alpha is None else self.lora_alpha)

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.accumulate

    def recipe(self) -> dict[str, Any]:
        """The settings, as a fine-tune file records them."""
        return {key: (list(value) if isinstance(value, tuple) else value)
                for key, value in dataclasses.asdict(self).items()}

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues."""
        return {key: value for key, value in self.recipe().items() if key not in _FREE}


def check(config: TrainConfig) -> TrainConfig:
    """`config` with tuples for lists; raises RequestError naming the first bad setting."""
    config = dataclasses.replace(config, sample_prompts=tuple(config.sample_prompts),
                                 sample_seeds=tuple(int(s) for s in config.sample_seeds))
    from glide_ui.glide.options import MODEL_NAMES

    _choice("model", config.model, MODEL_NAMES)
    _choice("precision", config.precision, PRECISIONS)
    _choice("optimizer", config.optimizer, OPTIMIZERS)
    _choice("fit", config.fit, FITS)
    if config.sample_steps < 2:  # one step has no posterior variance to take
        raise RequestError(f"sample_steps must be at least 2, got {config.sample_steps}.")
    for name in ("steps", "batch_size", "accumulate", "checkpoint_every"):
        if getattr(config, name) < 1:
            raise RequestError(f"{name} must be at least 1, got {getattr(config, name)}.")
    for name in ("lora_rank", "sample_every", "weight_decay"):
        if getattr(config, name) < 0:
            raise RequestError(f"{name} must not be negative, got {getattr(config, name)}.")
    if not config.lr > 0:
        raise RequestError(f"The learning rate must be positive, got {config.lr}.")
    if not 0.0 <= config.caption_dropout <= 1.0:
        raise RequestError(f"caption_dropout must be in [0, 1], got {config.caption_dropout}.")
    return config


def _choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    if value not in choices:
        raise RequestError(f"{name} must be one of {', '.join(map(str, choices))}; "
                           f"got {value!r}.")
